"""`print: "text {value}"`: a message. Via the buffer (the default) it is a record of a
hidden struct, one per print, built here from its placeholders' types and sent through
ebpf-run's ring buffer; via trace_pipe, bpf_trace_printk.

A placeholder names any value a condition could read: a built-in, `args.NAME`, a `let`
name (`k.target` of a struct looked up), `params.NAME`, `task.MEMBER`, `ppid`; with
`{VALUE:DECODER}` (then `{VALUE:DECODER:SPEC}`) shown through a decoder. Numbers keep
their type; strings become char[N]: comm char[16], a record's or a struct's char[N] its N,
a string behind a pointer (a `char *` argument such as args.filename, a __data_loc
field) STRING_SIZE bytes.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

from runner.check import formats, resolve
from runner.check.actions.base import ActionKind
from runner.check.actions.emit import record
from runner.check.checker import Checker, Skip
from runner.check.expr import ExprError
from runner.check.scope import ActionScope
from runner.kinds.builtins import BUILTINS
from runner.kinds.decoders import Decoder, Decoders, UnknownDecoder, UnknownEnum
from runner.model import expr as e
from runner.model.spec import Assign, MessageDef, Print, Struct
from runner.model.types import SCALARS, TypeRef, lay_out
from runner.spec.loader import PathKey
from runner.support.hints import did_you_mean, known

# A string read from memory (a `char *` argument, a __data_loc field) is read into this
# many bytes: 255 and the NUL, as BCC's opensnoop keeps a file name (NAME_MAX); a longer
# one ends in "..." (runner/codegen/c_strings.py).
STRING_SIZE = 256
COMM_SIZE = 16
# Names a dotted placeholder may start with: the namespaces (a let's struct is in locals).
_NAMESPACES = ("args", "params", "task")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
# `{VALUE:DECODER}`: a word no Python format spec is (those are fill, align, width, type)
_HINTED = re.compile(r"(.*) \((did you mean '[^']*'\?)\)\Z")
_DECODER = re.compile(r"(?:enum [A-Za-z_][A-Za-z0-9_]*|[a-z][a-z0-9_]+)\Z")


class Value(NamedTuple):
    """One distinct value of a print: its record member, type, how it is filled, its
    JSON key, and where it came from."""

    member: str
    type: TypeRef
    fill: Assign
    key: str
    origin: str
    scalar: Optional[str]  # an integer's type (trace_pipe), else None
    node: Any


class PrintKind(ActionKind):
    name = "print"
    node = Print

    def check(self, ck: Checker, path: PathKey, a: Dict[str, Any], scope: ActionScope,
              origin: str) -> Print:
        text = a["print"]
        here = (*path, "print")
        values: Dict[str, Value] = {}  # value name -> its member
        slots: List[Tuple[str, str, str, Optional[str]]] = []  # (literal, slot+items, spec, conv)
        decodes: List[Tuple[str, str, str]] = []
        samples: Tuple[Dict[str, Any], Dict[str, Any]] = ({}, {})
        bad = 0
        for literal, field, spec, conv, at in formats.pieces(ck, here, text):
            lit = literal.replace("{", "{{").replace("}", "}}")
            if field is None:
                slots.append((lit, "", "", None))
                continue
            try:
                name, dec, spec = _placeholder(ck, here, text, at, field, spec, scope)
                if dec is None and name in BUILTINS:  # syscall_name: shown by its decoder
                    dec = BUILTINS[name].decoder
                v = values.get(name) or _value(ck, here, text, at, field, name, scope, values)
                values[name] = v
                slot = v.member
                sample = [formats.sample_value(v.type, {}, hi) for hi in (False, True)]
                if dec is not None:
                    decoder = _decoder(ck, here, text, at, field, dec, v.type)
                    slot = f"er_d{len(decodes)}"
                    decodes.append((slot, v.member, dec))
                    sample = ["NAME" if decoder.keep_raw else "text"] * 2
            except Skip:
                bad += 1
                continue
            for s, one in zip(samples, sample):
                s[slot] = one
            slots.append((lit, slot + field[len(name):], spec, conv))
        if bad:
            raise Skip
        fmt = "".join(lit + ("{" + slot + (f"!{conv}" if conv else "")
                             + (f":{spec}" if spec else "") + "}" if slot else "")
                      for lit, slot, spec, conv in slots)
        formats.try_format(ck, here, fmt, *samples)
        msg_id = len(ck.messages) + 1
        if ck.via == "trace_pipe":
            return _printk(ck, here, text, list(values.values()), slots, decodes, msg_id,
                           origin)
        return _buffered(ck, fmt, text, list(values.values()), decodes, msg_id, origin)


def _placeholder(ck: Checker, path: PathKey, text: str, at: int, field: str,
                 spec: str, scope: ActionScope) -> Tuple[str, Optional[str], str]:
    """The value a placeholder names, its decoder and its own format spec; its syntax
    problems reported at its `{`."""
    m = _NAME.match(field)
    if m is None:
        ck.err_in(path, text, at, "placeholders must be named, e.g. {pid}")
        raise Skip
    name = m.group()
    head = name.split(".")[0]
    if head not in _NAMESPACES and head not in scope.locals and not any(
            n.startswith(f"{head}.") for n in scope.locals):
        name = head  # `{comm.upper}`: an attribute, refused below
    if not formats.items_ok(field, name):
        ck.err_in(path, text, at, f"'{{{field}}}' is not a field: {formats.NOT_A_FIELD[0]}",
                  formats.NOT_A_FIELD[1])
        raise Skip
    word, _, rest = spec.partition(":")
    dec = word if _DECODER.match(word) else None
    own = rest if dec is not None else spec
    problem = formats.spec_problem(field, own)
    if problem:
        ck.err_in(path, text, at, problem)
        raise Skip
    return name, dec, own


def _value(ck: Checker, path: PathKey, text: str, at: int, field: str, name: str,
           scope: ActionScope, values: Dict[str, Value]) -> Value:
    """The member of the hidden struct that carries value `name`, and how it is filled."""
    try:
        v = resolve.resolver(ck, path, scope)(name, 0)
    except ExprError as err:
        said = _HINTED.match(str(err))  # its "(did you mean ...)" as the hint
        ck.err_in(path, text, at, f"'{{{field}}}': {said[1] if said else err}",
                  said[2] if said else _hint(name, scope))
        raise Skip from None
    builtin = name in BUILTINS
    member = name if builtin else _member(name, values)
    key = name if builtin or name in resolve.TASK_ALIASES else name.rpartition(".")[2]
    origin = f"built-in {name}" if builtin else name
    if v.stack is not None:
        ck.err_in(path, text, at, f"'{{{field}}}' is {v.kind()}: a print shows numbers and "
                  "text", "a stack is shown by an aggregation keyed by it (see Stacks)")
        raise Skip
    node: Any = v.node
    if isinstance(node, e.CommStr):
        t = TypeRef("char", COMM_SIZE)
        return Value(member, t, Assign(member, "comm", None, COMM_SIZE), key, origin, None, node)
    if v.string is not None:
        size = _string_size(v.string)
        return Value(member, TypeRef("char", size), Assign(member, "read", v.string, size),
                     key, origin, None, node)
    if isinstance(node, e.ParamStr):
        return Value(member, TypeRef("char", node.size),
                     Assign(member, "read", node, node.size), key, origin, None, node)
    array = v.array
    if array is not None:
        size = SCALARS[array.scalar].size * array.count
        return Value(member, TypeRef(array.scalar, array.count),
                     Assign(member, "copy", array, size), key, origin, None, node)
    if not v.is_int:
        ck.err_in(path, text, at, f"'{{{field}}}' is {v.kind()}: a print shows numbers and "
                  "text")
        raise Skip
    assert v.scalar is not None
    fill = Assign(member, "expr", node if isinstance(node, e.Const)
                  else e.Cast(v.scalar, node), 0)
    return Value(member, TypeRef(v.scalar), fill, key, origin, v.scalar, node)


def _string_size(src: Any) -> int:
    if isinstance(src, (e.RecordChars, e.LocalChars)):
        return int(src.count)
    return STRING_SIZE


def _member(name: str, values: Dict[str, Value]) -> str:
    """A C member name for a value that is no built-in: er_ (no spec name starts so) and
    the name's words (`args.ret` -> er_args_ret), numbered where two would meet."""
    base = "er_" + name.replace(".", "_")
    taken = {v.member for v in values.values()}
    member, n = base, 1
    while member in taken or member == "er_id":
        n += 1
        member = f"{base}_{n}"
    return member


def _hint(name: str, scope: ActionScope) -> Optional[str]:
    """For a whole struct looked up (`{k}`): its fields are what a print shows; for an
    unknown flat name with none close, what a placeholder may name."""
    fields = sorted(n for n in scope.locals if n.startswith(f"{name}."))
    if fields:
        return f"'{name}' is a struct looked up: print its fields, e.g. {{{fields[0]}}}"
    if "." in name:
        return None
    return (known("built-ins", BUILTINS) + "; or a let name, args.NAME, params.NAME, "
            "task.MEMBER, ppid")


def _decoder(ck: Checker, path: PathKey, text: str, at: int, field: str, name: str,
             t: TypeRef) -> Decoder:
    shown = f"{{{field}:{name}}}"
    try:
        decoders = Decoders.for_arch(ck.arch)
        decoder = decoders.get(name)
    except UnknownDecoder as err:
        ck.err_in(path, text, at, f"'{shown}': unknown decoder '{name}'",
                  did_you_mean(name, err.known)
                  or known("decoders", err.known) + ", and 'enum NAME' (a kernel enum)")
        raise Skip from None
    except (UnknownEnum, KeyError) as err:
        ck.err_in(path, text, at, f"'{shown}': {err.args[0] if err.args else err}")
        raise Skip from None
    if not decoder.fits(t):
        ck.err_in(path, text, at, f"'{shown}': the value is {t}, decoder '{name}' takes "
                  f"{decoder.takes()}")
        raise Skip
    return decoder


def _buffered(ck: Checker, fmt: str, text: str, values: List[Value],
              decodes: List[Tuple[str, str, str]], msg_id: int, origin: str) -> Print:
    fields: List[Tuple[str, TypeRef, str]] = [("er_id", TypeRef("u32"), "message id")]
    fields += [(v.member, v.type, v.origin) for v in values]
    struct = Struct(f"er_msg{msg_id}", lay_out(tuple(fields), {}), origin, internal=True)
    keys = _keys(values)
    data = [keys.get(v.member, v.member) for v in values]
    decoders = Decoders.for_arch(ck.arch) if decodes else None
    for _, member, dec in decodes:
        assert decoders is not None
        if decoders.get(dec).keep_raw:
            data.append(f"{keys.get(member, member)}_name")
    ck.msg_structs.append(struct)
    ck.messages.append(MessageDef(msg_id, struct, fmt, origin, tuple(keys.items()),
                                  tuple(decodes), tuple(dict.fromkeys(data))))
    done = [Assign("er_id", "expr", e.Const(msg_id, wide=False), 0)]
    done += [v.fill for v in values]
    assert ck.messages_map is not None
    return Print(origin, record(ck, origin, ck.messages_map, struct, tuple(done)), "", ())


def _keys(values: List[Value]) -> Dict[str, str]:
    """member -> JSON key where they differ: a value's last name (args.ret -> ret), or its
    whole name where a built-in or an earlier value of the print has that key already."""
    out: Dict[str, str] = {}
    taken = {v.key for v in values if v.member == v.key}
    for v in values:
        if v.member == v.key:
            continue
        key = v.key if v.key not in taken else v.origin
        taken.add(key)
        out[v.member] = key
    return out


def _printk(ck: Checker, path: PathKey, text: str, values: List[Value],
            slots: List[Tuple[str, str, str, Optional[str]]],
            decodes: List[Tuple[str, str, str]], msg_id: int, origin: str) -> Print:
    # bpf_trace_printk takes three arguments; one carries this run's tag.
    if len(values) > 2:
        ck.err(path, f"with messages via trace_pipe a print takes at most 2 values, "
               f"this one has {len(values)}", "use the default messages: {via: buffer}")
        raise Skip
    for _, member, dec in decodes:  # a number shown as a name needs ebpf-run to decode it
        ck.err(path, f"{member} cannot be printed via trace_pipe: it is shown through the "
               f"decoder '{dec}'", "use the default messages: {via: buffer}")
        raise Skip
    if any(spec or conv for _, _, spec, conv in slots):
        ck.err(path, "format specs are not available with messages via trace_pipe")
        raise Skip
    by_member = {v.member: v for v in values}
    parts, args = [], []
    for lit, slot, _, _ in slots:
        parts.append(lit.replace("{{", "{").replace("}}", "}").replace("%", "%%"))
        if not slot:
            continue
        v = by_member[slot]
        if v.scalar is None:
            what = "comm" if v.member == "comm" else f"{v.origin} (text)"
            ck.err(path, f"{what} cannot be printed via trace_pipe",
                   "use the default messages: {via: buffer}")
            raise Skip
        parts.append(_printk_conversion(v.scalar))
        args.append(e.Cast(v.scalar, v.node))
    ck.messages.append(MessageDef(msg_id, None, text, origin))
    return Print(origin, None, "er-%u: " + "".join(parts), tuple(args))


def _printk_conversion(scalar: str) -> str:
    sc = SCALARS[scalar]
    if sc.signed:
        return "%lld" if sc.size == 8 else "%d"
    return "%llu" if sc.size == 8 else "%u"


KIND = PrintKind()
