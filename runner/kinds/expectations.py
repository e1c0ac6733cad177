"""The kinds of expectation a spec's test case can make (`event:`, `message:`, `map:`,
`attach:`, `lost:`), each found here by its key: what its target names, which records of
the run it is about, how a record of it is counted when not kept, and how it reads in a
report. runner/check/tests.py checks them by the same names; runner/testing/expectations.py
evaluates them through these rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from runner.kinds.registry import Registry

Record = Dict[str, Any]
# Records of the run not kept (over the limit of what a case keeps) are counted under a key:
# ("event", channel), ("message", ""), ("map", name); ("?", "") for a line too long to read.
DropKey = Tuple[str, str]


@dataclass(frozen=True)
class ExpectationKind:
    name: str  # the key in the spec
    target: str  # what its value names: "buffer", "map", "probe", "text" or "" (lost)
    # The field views of the records it is about, given its target.
    select: Callable[[str, Sequence[Record]], List[Record]]
    # The Dropped key its records are counted under when not kept; None: always kept.
    dropped_as: Callable[[str], Optional[DropKey]]
    # "event on X" / "events on X": (target, one) -> noun.
    noun: Callable[[str, bool], str]
    # Whether a met expectation of it can be undone by later records: a map's last dump and
    # the losses are known only once the run has ended.
    known_early: bool


def _events(target: str, records: Sequence[Record]) -> List[Record]:
    return [dict(r.get("data") or {}) for r in records
            if r.get("type") == "event" and r.get("channel") == target]


def _messages(target: str, records: Sequence[Record]) -> List[Record]:
    return [{"text": r.get("text"), **(r.get("data") or {})} for r in records
            if r.get("type") == "message"]


def _attaches(target: str, records: Sequence[Record]) -> List[Record]:
    return [{k: v for k, v in r.items() if k != "type"} for r in records
            if r.get("type") == "attach" and r.get("probe") == target]


def last_dump(name: str, records: Sequence[Record]) -> List[Record]:
    """The entries of a map's final dump (the one at exit): the last record that lists
    `entries`; for the one-record-per-key aggregations, the last record of each key."""
    dumps = [r for r in records if r.get("map") == name and r.get("type") != "attach"]
    whole = [r for r in dumps if "entries" in r]
    if whole:
        return [dict(entry) for entry in whole[-1]["entries"]]
    by_key: Dict[str, Record] = {}
    for r in dumps:
        by_key[json.dumps(r.get("key"), sort_keys=True)] = {
            k: v for k, v in r.items() if k not in ("type", "map")}
    return list(by_key.values())


def _summaries(target: str, records: Sequence[Record]) -> List[Record]:
    return [r for r in records if r.get("type") == "summary"]


def _plural(one: str, many: str, of: str = "") -> Callable[[str, bool], str]:
    return lambda target, single: (one if single else many) + (f" {of} {target}" if of else "")


EXPECTATIONS: Registry[ExpectationKind] = Registry("expectation kind")
for _k in (
    ExpectationKind("event", "buffer", _events, lambda t: ("event", t),
                    lambda t, one: f"{'event' if one else 'events'} on {t}", True),
    ExpectationKind("message", "text", _messages, lambda t: ("message", ""),
                    _plural("message", "messages"), True),
    ExpectationKind("map", "map", last_dump, lambda t: ("map", t),
                    _plural("entry", "entries", "of map"), False),
    ExpectationKind("attach", "probe", _attaches, lambda t: None,
                    _plural("attach", "attaches", "of probe"), True),
    ExpectationKind("lost", "", _summaries, lambda t: None, _plural("loss", "losses"), False),
):
    EXPECTATIONS.register(_k.name, _k)
