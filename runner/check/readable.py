"""`decode: {field: decoder}` on an event output: which fields are shown decoded, and the
names a format may then use (FIELD_name beside the raw FIELD when the decoder keeps it)."""

from __future__ import annotations

from typing import Any, Dict, Tuple

from runner.check.checker import Checker
from runner.kinds.decoders import Decoders, UnknownDecoder, UnknownEnum
from runner.model.spec import Struct
from runner.model.stacks import STACK_PID
from runner.spec.loader import PathKey

Decodes = Tuple[Tuple[str, str], ...]  # (field, decoder name)


def check(ck: Checker, path: PathKey, struct: Struct, raw: Dict[str, str]) -> Decodes:
    try:
        decoders = Decoders.for_arch(ck.arch)
    except KeyError:
        return ()  # reported: no syscall table for this architecture
    fields = {f.name: f.type for f in struct.layout.fields}
    out = []
    for field, name in raw.items():
        fpath = (*path, field)
        if field not in fields:
            ck.err(fpath, f"struct '{struct.name}' has no field '{field}'", key=True)
            continue
        try:
            decoder = decoders.get(name)
        except (UnknownDecoder, UnknownEnum) as e:
            ck.err(fpath, str(e))
            continue
        if not decoder.fits(fields[field]):
            ck.err(fpath, f"field '{field}' is {fields[field]}: decoder '{name}' takes "
                   f"{decoder.takes()}")
            continue
        out.append((field, name))
    return tuple(out)


def names(ck: Checker, decodes: Decodes) -> Dict[str, str]:
    """Names a format gains, with a sample text for each: FIELD_name for kept raw fields."""
    decoders = Decoders.for_arch(ck.arch) if decodes else None
    extra: Dict[str, str] = {}
    for field, name in decodes:
        assert decoders is not None
        if decoders.get(name).keep_raw:
            extra[f"{field}_name"] = "NAME"
    return extra


def default_format(struct: Struct, decodes: Decodes, ck: Checker) -> str:
    """name=value for every field, the readable name where a decoder keeps the raw one."""
    kept = names(ck, decodes)
    return " ".join(f"{f.name}={{{f.name}_name}}" if f"{f.name}_name" in kept
                    else f"{f.name}={{{f.name}}}" for f in struct.layout.fields
                    if f.name != STACK_PID)


def samples(record: Dict[str, Any], ck: Checker, decodes: Decodes) -> Dict[str, Any]:
    """A sample record as the runtime shows it: replaced fields become text."""
    out = dict(record)
    decoders = Decoders.for_arch(ck.arch) if decodes else None
    for field, name in decodes:
        assert decoders is not None
        if decoders.get(name).keep_raw:
            out[f"{field}_name"] = "NAME"
        else:
            out[field] = "text"
    return out
