"""Stage 2: check a loaded spec against schema.json, with located messages.

jsonschema reports `oneOf` failures as one vague error; for the places where a
spec picks one shape among several (actions, attach targets, values) we look at
which keys the user wrote and report the errors of the shape they meant.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional, Tuple

from runner.errors import Diagnostic, SpecError
from runner.spec import fast_schema
from runner.spec.loader import Document
from runner.support.hints import did_you_mean
from runner.support.resources import schema

if TYPE_CHECKING:  # imported when a spec is not certainly valid (fast_schema.py says why)
    import jsonschema
    from jsonschema.exceptions import ValidationError

_validator: Optional[jsonschema.protocols.Validator] = None


def validator() -> jsonschema.protocols.Validator:
    global _validator
    if _validator is None:
        _validator = validator_for(schema())
    return _validator


def validator_for(doc: Dict[str, Any]) -> jsonschema.protocols.Validator:
    """A jsonschema validator of `doc` with this project's two rules (tests hold
    fast_schema.py to it on small schemas too)."""
    import jsonschema

    base = jsonschema.validators.validator_for(doc)
    cls = jsonschema.validators.extend(
        base,
        validators={"pattern": _pattern},
        # 2.0 is an integer to JSON Schema; to a spec's page count it is a float.
        type_checker=base.TYPE_CHECKER.redefine("integer", _is_int),
    )
    return cls(doc)


def _is_int(_checker: Any, value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _pattern(_validator: Any, pattern: str, instance: Any, _schema: Any) -> Iterator[Any]:
    """JSON Schema's `$` is the end of the text; Python's also matches before a final
    newline, which would let "name\n" through. Anchor with \\Z instead."""
    from jsonschema.exceptions import ValidationError

    if isinstance(instance, str) and not fast_schema.anchored(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def check(doc: Document) -> None:
    """Raise SpecError with every schema problem of `doc`, in document order."""
    if fast_schema.is_valid(schema(), doc.data):
        return
    errors = list(validator().iter_errors(doc.data))
    diags = [d for e in errors for d in _explain(doc, e)]
    if diags:
        uniq = {(d.location.line, d.location.col, d.message): d for d in diags}
        found = sorted(uniq.values(), key=lambda d: (d.location.line, d.location.col))
        raise (UnknownActions if all(map(_unknown_actions_only, errors))
               else SpecError)(found)


class UnknownActions(SpecError):
    """The schema's only problems are actions of no known kind: every other part of the
    spec has its shape, so the meaning checker can still report its own errors (it passes
    over those actions) and the user sees them all in one pass."""


def _explain(doc: Document, err: ValidationError) -> Iterator[Diagnostic]:
    if err.validator in ("oneOf", "anyOf") and err.context:
        yield from _explain_choice(doc, err)
        return
    path = tuple(err.absolute_path)
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        allowed = list(err.schema.get("properties", {}))
        for key in _extra_keys(err):
            yield doc.diagnostic((*path, key), f"unknown key '{key}'" + _where(path),
                                 did_you_mean(key, allowed) or _allowed(allowed), key=True)
        return
    if err.validator == "required":
        missing = [k for k in err.validator_value if k not in err.instance]
        for k in missing:
            yield doc.diagnostic(path, f"missing key '{k}'" + _where(path))
        return
    if err.validator == "propertyNames":
        bad = err.instance if isinstance(err.instance, str) else None
        loc_path = (*path, bad) if bad is not None else path
        yield doc.diagnostic(loc_path, f"'{bad}' is not a valid name here" + _where(path),
                             "names are C identifiers: letters, digits, '_'", key=True)
        return
    yield doc.diagnostic(path, _plain(err) + _where(path))


def _explain_choice(doc: Document, err: ValidationError) -> Iterator[Diagnostic]:
    inst = err.instance
    path = tuple(err.absolute_path)
    if isinstance(inst, dict):
        sub = _chosen(err)
        if sub:
            for e in sub:
                yield from _explain(doc, e)
            return
        key, names = _unknown_key(err)
        if key is not None:
            yield doc.diagnostic((*path, key), f"unknown {_kind(path)} '{key}'",
                                 did_you_mean(key, names) or _allowed(names), key=True)
            return
    # Branches of the wrong shape (a list where a mapping was written) say nothing useful.
    here = [e for e in err.context if not (e.validator == "type" and not e.relative_path)]
    if not here:
        kinds = [t for e in err.context for t in _as_list(e.validator_value)]
        yield doc.diagnostic(path, f"expected {_type_words(kinds)}, got {_describe(inst)}"
                             + _where(path))
        return
    from jsonschema.exceptions import best_match

    yield from _explain(doc, best_match(here))


def _chosen(err: ValidationError) -> List[ValidationError]:
    """The errors of the branch whose `required` keys the user wrote (e.g. `print:`)."""
    for branch in _branches(err):
        req = branch.get("required", [])
        if req and all(k in err.instance for k in req):
            sub = [e for e in err.context if _branch_of(err, e) is branch]
            if sub:
                return sub
    return []


def _unknown_key(err: ValidationError) -> Tuple[Optional[str], List[str]]:
    """The mapping's first key when it names none of the branches, and their names."""
    names = sorted({k for b in _branches(err) for k in b.get("required", [])[:1]})
    key = next(iter(err.instance), None) if names else None
    return (key if key is not None and key not in names else None), names


def _unknown_actions_only(err: ValidationError) -> bool:
    """Is every problem `err` stands for an action of no known kind (`- frob: ...`)?"""
    if err.validator not in ("oneOf", "anyOf") or not err.context \
            or not isinstance(err.instance, dict):
        return False
    sub = _chosen(err)
    if sub:
        return all(map(_unknown_actions_only, sub))
    return _kind(tuple(err.absolute_path)) == "action" and _unknown_key(err)[0] is not None


def _as_list(v: Any) -> List[Any]:
    return v if isinstance(v, list) else [v]


def _branches(err: ValidationError) -> List[Dict[str, Any]]:
    return [_resolve(b) for b in err.schema.get(err.validator, []) if isinstance(b, dict)]


def _resolve(branch: Dict[str, Any]) -> Dict[str, Any]:
    """Follow a local "$ref" (all of schema.json's are "#/$defs/NAME")."""
    ref = branch.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        target = schema()["$defs"].get(ref[len("#/$defs/"):])
        if isinstance(target, dict):
            return target
    return branch


def _branch_of(err: ValidationError, sub: ValidationError) -> Optional[Dict[str, Any]]:
    idx = sub.relative_schema_path[0] if sub.relative_schema_path else None
    branches = _branches(err)
    return branches[idx] if isinstance(idx, int) and idx < len(branches) else None


def _extra_keys(err: ValidationError) -> List[str]:
    props = err.schema.get("properties", {})
    return [k for k in err.instance if k not in props]


_ACTION_LISTS = ("do", "then", "else", "default")


def _kind(path: tuple) -> str:
    """What the mapping at `path` chose with its first key: an action (an item of an action
    list), an attach kind, a kind of value inside an action (`{literal: ...}`), else a key."""
    item = len(path) >= 2 and isinstance(path[-1], int)
    if item and (path[-2] in _ACTION_LISTS or (len(path) >= 3 and path[-3] == "cases")):
        return "action"
    if "attach" in path:
        return "attach kind"
    if any(p in _ACTION_LISTS or p == "cases" for p in path):
        return "value kind"
    return "key"


def _where(path: tuple) -> str:
    return f" (in {'.'.join(str(p) for p in path)})" if path else ""


def _allowed(names: List[str]) -> Optional[str]:
    return f"expected one of: {', '.join(sorted(names))}" if names else None


def _plain(err: ValidationError) -> str:
    v = err.validator
    if v == "type":
        return f"expected {_type_words(err.validator_value)}, got {_describe(err.instance)}"
    if v == "enum":
        return (f"{err.instance!r} is not one of "
                f"{', '.join(repr(x) for x in err.validator_value)}")
    if v == "pattern":
        return f"{err.instance!r} is not allowed here ({err.schema.get('description', '')})"
    if v in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        return f"{err.instance!r} is out of range ({v} {err.validator_value})"
    if v in ("maxLength", "minLength", "maxItems", "minItems", "minProperties", "maxProperties"):
        return f"{_describe(err.instance)} breaks {v}={err.validator_value}"
    return err.message


def _type_words(t: Any) -> str:
    words = {"object": "a mapping", "array": "a list", "string": "a string",
             "integer": "an integer", "number": "a number", "boolean": "true or false"}
    if isinstance(t, list):
        return " or ".join(dict.fromkeys(str(words.get(x, x)) for x in t))
    return words.get(t, str(t))


def _describe(v: Any) -> str:
    if isinstance(v, bool):
        return f"boolean {str(v).lower()}"
    if isinstance(v, dict):
        return "a mapping"
    if isinstance(v, list):
        return f"a list of {len(v)}"
    if isinstance(v, str):
        s = v if len(v) <= 40 else v[:37] + "..."
        return f"string {s!r}"
    if v is None:
        return "nothing (null)"
    return f"{type(v).__name__} {v!r}"
