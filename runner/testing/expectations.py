"""Match a run's JSON records against a case's expectations. Pure: no kernel, no processes.

A record is one line of `ebpf-run SPEC --json`. Each expectation selects the records it is
about (the events of one channel, the messages, the entries of a map's last dump, the
summary), counts those whose fields meet every condition, and compares that count with
its rule. A failure says what was expected, how many were seen, and the records that came
closest (the ones meeting the most conditions), with the conditions they missed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from runner.kinds.expectations import EXPECTATIONS, DropKey
from runner.model.tests import (
    Capture,
    Condition,
    Expectation,
    FieldMatch,
    FieldRef,
    Operand,
    Template,
)
from runner.support.regexes import RegexTimeout, search, time_bound

Record = Dict[str, Any]
Captures = Mapping[str, Any]
# Records of the run not kept (over the limit of what is kept), by what selects them
# (runner/kinds/expectations.py DropKey).
Dropped = Mapping[DropKey, int]
CLOSEST = 3  # records shown after a failure
_MISSING = object()
SYMBOLS = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}


@dataclass(frozen=True)
class Outcome:
    expectation: Expectation
    ok: bool
    seen: int  # records that met every condition
    message: str  # on failure: expected ...; saw ...; closest records seen: ...


def check_all(expect: Sequence[Expectation], records: Sequence[Record],
              captures: Captures, dropped: Optional[Dropped] = None) -> List[Outcome]:
    with time_bound():
        return [check(e, records, captures, dropped) for e in expect]


def met_for_good(expect: Sequence[Expectation], records: Sequence[Record],
                 captures: Captures) -> bool:
    """True when every expectation holds and no later record can undo that, so the run
    can stop early. Map and loss expectations are only known once the run has ended."""
    with time_bound():
        return all(EXPECTATIONS.lookup(e.kind).known_early and e.count.monotone() and
                   check(e, records, captures).ok for e in expect)


def check(e: Expectation, records: Sequence[Record], captures: Captures,
          dropped: Optional[Dropped] = None) -> Outcome:
    if not EXPECTATIONS.lookup(e.kind).target:  # lost: a count of the summary's losses
        return _check_lost(e, records)
    try:
        return _check(e, records, captures, dropped)
    except RegexTimeout as err:
        return Outcome(e, False, 0, f"expected {describe(e, captures)}; could not be "
                                    f"evaluated: {err}")


def _check(e: Expectation, records: Sequence[Record], captures: Captures,
           dropped: Optional[Dropped]) -> Outcome:
    subjects = select(e, records)
    matching = [s for s in subjects if not missed(e.where, s, captures)]
    unseen = not_kept(e, dropped or {})
    if e.count.holds(len(matching)) and (not unseen or e.count.monotone()):
        # At least N among the records kept: the ones not kept cannot undo it.
        return Outcome(e, True, len(matching), "")
    if unseen:
        return Outcome(e, False, len(matching), f"expected {describe(e, captures)}; could not "
                       f"be evaluated: {unseen} of the run's records it is about were not "
                       f"kept (over the limit of what a case keeps); saw {len(matching)} "
                       f"matching among those kept")
    what = describe(e, captures)
    if EXPECTATIONS.lookup(e.kind).target == "map" and not subjects and \
            not _dumped(e.target, records):
        seen = f"saw no dump of map {e.target}"
    else:
        seen = f"saw {len(matching)} of {len(subjects)} {_noun(e, len(subjects))}"
    # Too many: show the ones that should not be there. Too few: the nearest misses.
    if len(matching) > e.count.n and e.count.op != "at_least":
        shown = [_show(s) for s in matching[:CLOSEST]]
        tail = f"; matching records seen: {' | '.join(shown)}" if shown else ""
    else:
        tail = _closest(e, subjects, captures)
    return Outcome(e, False, len(matching), f"expected {what}; {seen}{tail}")


def select(e: Expectation, records: Sequence[Record]) -> List[Record]:
    """The field views of the records an expectation is about."""
    return EXPECTATIONS.lookup(e.kind).select(e.target, records)


def not_kept(e: Expectation, dropped: Dropped) -> int:
    """How many records this expectation is about were counted but not kept."""
    key = EXPECTATIONS.lookup(e.kind).dropped_as(e.target)
    return 0 if key is None else dropped.get(key, 0) + dropped.get(("?", ""), 0)


def kept_as(record: Record) -> Tuple[str, str]:
    """The key a record is counted under in Dropped when it is not kept."""
    if "map" in record and record.get("type") != "attach":
        return ("map", str(record["map"]))
    if record.get("type") == "event":
        return ("event", str(record.get("channel")))
    return (str(record.get("type")), "")


def _dumped(name: str, records: Sequence[Record]) -> bool:
    return any(r.get("map") == name and r.get("type") != "attach" for r in records)


def _check_lost(e: Expectation, records: Sequence[Record]) -> Outcome:
    summaries = [r for r in records if r.get("type") == "summary"]
    if not summaries:
        return Outcome(e, False, 0, f"expected {describe(e)}; saw no summary record "
                                    "(the run did not end normally)")
    lost = sum(int(item.get("count") or 0) for item in summaries[-1].get("lost") or [])
    if e.count.holds(lost):
        return Outcome(e, True, lost, "")
    return Outcome(e, False, lost, f"expected {describe(e)}; saw {lost} lost: "
                                   f"{_show(summaries[-1].get('lost'))}")


# -- conditions ----------------------------------------------------------------------------

def missed(where: Sequence[FieldMatch], subject: Record,
           captures: Captures) -> List[str]:
    """What `subject` fails of `where`, one phrase per failed condition (empty: a match)."""
    out = []
    for fm in where:
        value = lookup(subject, fm.path)
        for cond in fm.conditions:
            if not holds(cond, value, subject, captures):
                out.append(f"{_dotted(fm.path)} is {_show_value(value)}, "
                           f"not {_describe_cond(cond, captures, subject)}")
    return out


def holds(cond: Condition, value: Any, subject: Record, captures: Captures) -> bool:
    if value is _MISSING:
        return False
    if cond.op == "one_of":
        assert isinstance(cond.operand, tuple)
        return any(_equal(value, resolve(o, subject, captures)) for o in cond.operand)
    assert not isinstance(cond.operand, tuple)
    want = resolve(cond.operand, subject, captures)
    if cond.op == "regex":
        text = value if isinstance(value, str) else json.dumps(value)
        return search(str(want), text) is not None
    if cond.op == "eq":
        return _equal(value, want)
    if cond.op == "ne":
        return not _equal(value, want)
    if not (_number(value) and _number(want)):
        return False
    return bool({"lt": value < want, "le": value <= want, "gt": value > want,
                 "ge": value >= want}[cond.op])


def resolve(o: Operand, subject: Record, captures: Captures) -> Any:
    if isinstance(o, Capture):
        return captures.get(o.name, _MISSING)
    if isinstance(o, Template):
        return o.text.format(**{n: captures.get(n, "") for n in o.names})
    if isinstance(o, FieldRef):
        return lookup(subject, o.path)
    return o


def lookup(subject: Any, path: Tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(subject, dict) or part not in subject:
            return _MISSING
        subject = subject[part]
    return subject


def _equal(a: Any, b: Any) -> bool:
    if a is _MISSING or b is _MISSING:
        return False
    if _number(a) and _number(b):
        return bool(a == b)
    return type(a) is type(b) and bool(a == b)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# -- describing ----------------------------------------------------------------------------

def describe(e: Expectation, captures: Optional[Captures] = None) -> str:
    if not EXPECTATIONS.lookup(e.kind).target:  # lost
        return f"{e.count.describe()} lost" if e.count.n else "nothing lost"
    text = f"{e.count.describe()} {_noun(e, e.count.n)}"
    if e.where:
        conds = [f"{_dotted(fm.path)} {_describe_cond(c, captures)}"
                 for fm in e.where for c in fm.conditions]
        text += " where " + ", ".join(conds)
    return text


def _noun(e: Expectation, n: int) -> str:
    """'event on output' / 'events on output', 'message(s)', 'entry/entries of map counts'."""
    return EXPECTATIONS.lookup(e.kind).noun(e.target, n == 1)


def _describe_cond(c: Condition, captures: Optional[Captures] = None,
                   subject: Optional[Record] = None) -> str:
    if isinstance(c.operand, tuple):
        return "one of " + ", ".join(_operand_text(o, captures, subject) for o in c.operand)
    if c.op == "regex":
        return f"matching /{c.operand}/"
    return f"{SYMBOLS[c.op]} {_operand_text(c.operand, captures, subject)}"


def _operand_text(o: Operand, captures: Optional[Captures],
                  subject: Optional[Record]) -> str:
    if isinstance(o, Capture):
        if captures is not None and o.name in captures:
            return f"{_show_value(captures[o.name])} (captured {o.name})"
        return "{" + o.name + "}"
    if isinstance(o, Template):
        if captures is not None:
            return _show_value(resolve(o, {}, captures))
        return json.dumps(o.text)
    if isinstance(o, FieldRef):
        if subject is not None:
            return f"{_show_value(lookup(subject, o.path))} (field {_dotted(o.path)})"
        return f"field {_dotted(o.path)}"
    return _show_value(o)


def _closest(e: Expectation, subjects: Sequence[Record], captures: Captures) -> str:
    if not subjects or not e.where:
        return ""
    scored = sorted(((len(missed(e.where, s, captures)), i) for i, s in enumerate(subjects)))
    shown = []
    for n_missed, i in scored[:CLOSEST]:
        why = "; ".join(missed(e.where, subjects[i], captures))
        shown.append(f"{_show(subjects[i])}" + (f" ({why})" if n_missed else ""))
    return "; closest records seen: " + " | ".join(shown)


def _dotted(path: Tuple[str, ...]) -> str:
    return ".".join(path)


def _show_value(v: Any) -> str:
    return "missing" if v is _MISSING else json.dumps(v, ensure_ascii=False)


def _show(v: Any) -> str:
    return json.dumps(v, ensure_ascii=False, sort_keys=False)
