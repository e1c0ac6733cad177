"""Metric and label names as Prometheus and promtool accept them, checked before anything
is served (and by the checker, at the spec's location). Split from prometheus.py."""

from __future__ import annotations

import re
from typing import Literal, Set, Tuple

MetricKind = Literal["counter", "gauge", "histogram"]

_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
# promtool's lint (promlint) refuses these in a name: scale to seconds or bytes instead.
# fmt: off
_PREFIXES = ("pico", "nano", "micro", "milli", "centi", "deci", "deca", "hecto", "kilo",
             "kibi", "mega", "mibi", "giga", "gibi", "tera", "tebi", "peta", "pebi")
_BASES = ("amperes", "bytes", "grams", "joules", "meters", "metres", "seconds", "volts")
# fmt: on
_NOT_BASE_UNITS = (
    {prefix + base for prefix in _PREFIXES for base in _BASES}
    | {"minutes", "hours", "days", "weeks", "bits", "calories", "pounds", "ounces"}
    | {"s", "ms", "us", "ns", "sec", "b", "kb", "mb", "gb", "tb", "pb", "m", "h", "d"}
)
_SUFFIXES = ("_total", "_bucket", "_count", "_sum", "_created", "_info")
_OWN_PREFIX = "ebpf_run_"


class MetricsError(ValueError):
    """A metric declaration Prometheus would refuse or misread. The checker reports it at
    the spec's location; here it is raised as soon as the declaration is made."""


def validate_metric_name(name: str, kind: MetricKind) -> None:
    # Colons are legal but reserved for recording rules: an exporter must not use them.
    if not _NAME.match(name) or name.startswith("__"):
        raise MetricsError(
            f"metric name {name!r}: use letters, digits and '_', not starting with a digit or '__'"
        )
    if name.startswith(_OWN_PREFIX):
        raise MetricsError(f"metric name {name!r}: the prefix {_OWN_PREFIX!r} is ebpf-run's own")
    for token in name.split("_"):
        if token in _NOT_BASE_UNITS:
            raise MetricsError(
                f"metric name {name!r}: {token!r} is not a base unit; record seconds or bytes "
                "(a histogram's scale converts) and name the metric after them"
            )
    if kind == "counter":
        if not name.endswith("_total"):
            raise MetricsError(f"counter {name!r} must end in '_total'")
        rest = name[: -len("_total")]
    else:
        rest = name
    for suffix in _SUFFIXES:
        if rest.endswith(suffix):
            raise MetricsError(
                f"{kind} {name!r}: {suffix!r} is a suffix Prometheus adds to other metric kinds"
            )


def validate_label_names(labels: Tuple[str, ...], kind: MetricKind) -> None:
    seen: Set[str] = set()
    for label in labels:
        if not _NAME.match(label) or label.startswith("__"):
            raise MetricsError(
                f"label name {label!r}: use letters, digits and '_', not starting with a digit "
                "or '__'"
            )
        if kind == "histogram" and label == "le":
            raise MetricsError("label 'le' is the bucket bound of a histogram")
        if label in seen:
            raise MetricsError(f"label {label!r} appears twice")
        seen.add(label)
