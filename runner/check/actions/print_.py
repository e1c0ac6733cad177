"""`print: "text {builtin}"`: a message. Via the buffer (the default) it is a record of an
internal struct sent through ebpf-run's ring buffer; via trace_pipe, bpf_trace_printk."""

from __future__ import annotations

import string
from typing import Any, Dict, List, Tuple

from runner.check import formats
from runner.check.actions.base import ActionKind
from runner.check.actions.emit import record
from runner.check.checker import Checker, Skip
from runner.check.resolve import TASK_ALIASES, use_builtin
from runner.check.scope import ActionScope
from runner.check.values import assign
from runner.kinds.builtins import BUILTINS
from runner.model.expr import BuiltinRef, Cast, Const
from runner.model.spec import Assign, MessageDef, Print, Struct
from runner.model.types import SCALARS, TypeRef, lay_out, parse_type
from runner.spec.loader import PathKey


class PrintKind(ActionKind):
    name = "print"
    node = Print

    def check(self, ck: Checker, path: PathKey, a: Dict[str, Any], scope: ActionScope,
              origin: str) -> Print:
        text = a["print"]
        here = (*path, "print")
        names = formats.fields(ck, here, text, set(BUILTINS), "built-in",
                               [*TASK_ALIASES, "args", "params", "task"], _print_it)
        formats.try_format(ck, here, text, *({n: formats.sample_value(
            parse_type(BUILTINS[n].type), {}, hi) for n in names} for hi in (False, True)))
        for n in names:
            use_builtin(ck, here, n, scope)
        msg_id = len(ck.messages) + 1
        if ck.via == "trace_pipe":
            return _printk(ck, here, text, names, msg_id, origin)
        fields: List[Tuple[str, TypeRef, str]] = [("er_id", TypeRef("u32"), "message id")]
        fields += [(n, parse_type(BUILTINS[n].type), f"built-in {n}") for n in names]
        struct = Struct(f"er_msg{msg_id}", lay_out(tuple(fields), {}), origin, internal=True)
        ck.msg_structs.append(struct)
        decode = tuple((n, d) for n in names if (d := BUILTINS[n].decoder) is not None)
        ck.messages.append(MessageDef(msg_id, struct, text, origin, decode))
        done = [Assign("er_id", "expr", Const(msg_id, wide=False), 0)]
        done += [assign(ck, here, n, parse_type(BUILTINS[n].type), n, scope) for n in names]
        assert ck.messages_map is not None
        return Print(origin, record(ck, origin, ck.messages_map, struct, tuple(done)), "", ())


def _print_it(value: str) -> str:
    """How to show a value print cannot (it shows built-ins only)."""
    if value == "args.ret":  # the same value as a built-in
        return "print shows built-ins: the result is {retval} (at an exit)"
    name = value.rpartition(".")[2]
    return (f"print shows built-ins: to show {value}, emit it in an event "
            f"(set: {{{name}: {value}}}) shown by an output format")


def _printk(ck: Checker, path: PathKey, text: str, names: List[str], msg_id: int,
            origin: str) -> Print:
    # bpf_trace_printk takes three arguments; one carries this run's tag.
    if len(names) > 2:
        ck.err(path, f"with messages via trace_pipe a print takes at most 2 values, "
               f"this one has {len(names)}", "use the default messages: {via: buffer}")
        raise Skip
    parts = []
    for literal, field, spec, conv in string.Formatter().parse(text):
        parts.append(literal.replace("%", "%%"))
        if field is None:
            continue
        if spec or conv:
            ck.err(path, "format specs are not available with messages via trace_pipe")
            raise Skip
        if field == "comm" or BUILTINS[field].decoder:
            ck.err(path, f"{field} cannot be printed via trace_pipe",
                   "use the default messages: {via: buffer}")
            raise Skip
        parts.append(_printk_conversion(field))
    ck.messages.append(MessageDef(msg_id, None, text, origin))
    fmt = "er-%u: " + "".join(parts)
    used = [f for _, f, _, _ in string.Formatter().parse(text) if f is not None]
    args = tuple(Cast(BUILTINS[n].type, BuiltinRef(n)) for n in used)
    return Print(origin, None, fmt, args)


def _printk_conversion(name: str) -> str:
    sc = SCALARS[BUILTINS[name].type]
    if sc.signed:
        return "%lld" if sc.size == 8 else "%d"
    return "%llu" if sc.size == 8 else "%u"


KIND = PrintKind()
