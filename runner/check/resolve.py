"""What a name in a value or a condition means, in one action's scope.

Looked up in this order: a `let` value (`delta`, `e.flags` for a struct's field), the
probe's named arguments (`args.filename`), a parameter (`params.pid`), a field of the
current task from the kernel's BTF (`task.exit_code`, `task.real_parent.tgid`; `ppid` is
the latter), then the built-ins (`pid`, `ktime`, `comm`...), then the constants of kernel
enums (`TCP_SYN_SENT`: runner/support/enums.py).
"""

from __future__ import annotations

import re
from typing import Optional

from runner.check.arith import Resolve, Typed
from runner.check.checker import Checker, Skip
from runner.check.expr import ExprError
from runner.check.scope import ActionScope
from runner.kinds.builtins import BUILTINS, SYSCALL_EXIT_KRETPROBE, available
from runner.model import expr as e
from runner.model.types import SCALAR_BY_SIZE, STACKS
from runner.spec.loader import PathKey
from runner.support import btf, syscalls
from runner.support.enums import enum_table
from runner.support.hints import did_you_mean

# What a `let` whose value failed names: its uses are skipped without a report.
UNKNOWN = Typed(e.Local("?"), None)

# Names that read the current task through BTF, and what they stand for.
TASK_ALIASES = {"ppid": "task.real_parent.tgid"}
# The names a value may start with (besides `let` names): for hints where one is misplaced.
LANGUAGE_NAMES = (*BUILTINS, *TASK_ALIASES, "args", "params", "task")


def use_builtin(ck: Checker, path: PathKey, name: str, scope: ActionScope) -> None:
    """Record that the actions read built-in `name`; report it if a context lacks it."""
    missing = sorted({c for c in scope.contexts if not available(name, c)})
    if missing:
        ck.err(path, f"'{name}' is not available in a {missing[0].replace('_', ' ')} "
               "program", f"{name} works in: "
               + ", ".join(sorted(BUILTINS[name].contexts)).replace("_", " "))
        raise Skip
    if name in ("syscall_nr", "syscall_name") and scope.tail_called and \
            SYSCALL_EXIT_KRETPROBE in scope.contexts:
        # The kretprobe's number is a constant of the probe (its one syscall), and a
        # program may be reached from several.
        ck.err(path, f"'{name}' is not available in a program tail-called from a "
               "syscall_exit probe", "at the kretprobe on a syscall's function only the "
               "probe knows the number: store it in a map before the tail_call")
        raise Skip
    if scope.args is not None and name[:3] == "arg" and name[3:].isdigit():
        syscall, names = scope.args
        if int(name[3:]) >= len(names):
            ck.err(path, f"'{name}' is past the arguments of {syscall}, which "
                   + (f"takes {len(names)}: {', '.join(names)}" if names else "takes none"),
                   f"arg0..arg{len(names) - 1} are its arguments" if names else None)
            raise Skip
    scope.needs.add(name)  # contextual ones shape the prologue; some share a helper call


def resolver(ck: Checker, path: PathKey, scope: ActionScope) -> Resolve:
    def resolve(name: str, col: int) -> Typed:
        head, _, rest = name.partition(".")
        if scope.locals.get(head) is UNKNOWN:
            raise Skip  # a `let` whose value was reported: its uses are no new error
        if name in scope.locals:
            return scope.locals[name]
        if head == "args" and rest:
            return _arg(ck, path, scope, rest, col)
        if head == "params" and rest:
            return _param(ck, rest, col)
        if head == "task" or name in TASK_ALIASES:
            if ck.arch != syscalls.host_arch():
                raise ExprError(f"{name} is read at offsets from this machine's BTF, which "
                                f"do not hold for {ck.arch}: render on the target", col)
            return task_field(TASK_ALIASES.get(name, name), col)
        if name in STACKS:
            raise ExprError(f"'{name}' is a stack: it only fills an aggregation's key field "
                            f"declared {name} or {name}[N], it is not a value to compute "
                            "with", col)
        return _builtin_or_constant(ck, path, scope, name, col)
    return resolve


def _builtin_or_constant(ck: Checker, path: PathKey, scope: ActionScope, name: str,
                         col: int) -> Typed:
    b = BUILTINS.get(name)
    if b is None and "." not in name:
        found = enum_constant(ck.arch, name, col)
        if found is not None:
            return found
    if b is None:
        # `e.fieldd` means a field of a looked-up struct, `pidd` a flat name: never both.
        hint = did_you_mean(name, [n for n in (*BUILTINS, *scope.locals, *TASK_ALIASES)
                                   if ("." in n) == ("." in name)])
        hint = hint or constant_hint(ck.arch, name)
        raise ExprError(f"unknown name '{name}'" + (f" ({hint})" if hint else ""), col)
    use_builtin(ck, path, name, scope)
    if b.name == "comm":
        return Typed(e.CommStr(), None, e.CommStr())
    return Typed(e.BuiltinRef(b.name), b.type)


def enum_constant(arch: str, name: str, col: int) -> Optional[Typed]:
    """A kernel enum constant (TCP_SYN_SENT) as the number it stands for, from the running
    kernel's BTF, else the shipped table; None when no enum has it. Typed as a literal is,
    so it meets signed and unsigned values alike."""
    if not _LOOKS_CONSTANT.match(name):
        return None
    table = enum_table(arch)
    if table.is_ambiguous(name):
        raise ExprError(f"'{name}' is a constant of several kernel enums, with different "
                        f"values ({table.source}): write the number", col)
    found = table.constant(name)
    if found is None:
        return None
    value = found[1]
    return Typed(e.Const(value, name=name), "s64" if value < 2**63 else "u64", pos=col)


def looks_constant(name: str) -> bool:
    """Written as a kernel constant is (upper case): looked up among the enums'."""
    return bool(_LOOKS_CONSTANT.match(name))


def constant_hint(arch: str, name: str) -> Optional[str]:
    """For a name written as a constant (upper case) that no enum has: the nearest constant
    of the same prefix (TCP_SYNSENT -> TCP_SYN_SENT), and where they were looked for."""
    if not _LOOKS_CONSTANT.match(name):
        return None
    table = enum_table(arch)
    prefix = name.split("_", 1)[0] + "_"
    near = did_you_mean(name, [c for c in table.constants if c.startswith(prefix)])
    return near or f"no kernel enum has a constant '{name}' in {table.source}"


# Only names in upper case are looked up as constants, as the kernel writes them: BTF also
# has lower-case ones (`true`, `false`) that would shadow a typo's "did you mean".
_LOOKS_CONSTANT = re.compile(r"[A-Z_][A-Z0-9_]*\Z")


def _arg(ck: Checker, path: PathKey, scope: ActionScope, name: str, col: int) -> Typed:
    arg = scope.named.get(name)
    if arg is None and name == "ret":
        raise ExprError(f"this probe has no argument 'ret': {_ret_hint(scope)}", col)
    if arg is None and name in scope.unshared:
        raise ExprError(scope.unshared[name], col)
    if arg is None:
        hint = did_you_mean(name, scope.named)
        have = ", ".join(sorted(scope.named)) or "none"
        raise ExprError(f"this probe has no argument '{name}'"
                        + (f" ({hint})" if hint else f"; it has: {have}"), col)
    for b in arg.builtins:
        use_builtin(ck, path, b, scope)
    return arg.value


def _ret_hint(scope: ActionScope) -> str:
    """Where a result is: `retval` where this probe has one (a kretprobe), else at an exit."""
    if scope.contexts and all(available("retval", c) for c in scope.contexts):
        return "the return value here is 'retval'"
    if scope.args is not None:
        return (f"the result is read at the exit: attach {{syscall_exit: {scope.args[0]}}}, "
                "where it is args.ret (or retval)")
    return ("a result is read at an exit: a syscall_exit probe (args.ret or retval), a "
            "kretprobe or a uretprobe (retval)")


def _param(ck: Checker, name: str, col: int) -> Typed:
    p = ck.params.get(name)
    if p is None:
        hint = did_you_mean(name, ck.params)
        raise ExprError(f"no parameter '{name}' in params" + (f" ({hint})" if hint else ""),
                        col)
    if p.size:
        return Typed(e.ParamStr(name, p.size), None, pos=col)
    return Typed(e.Param(name), p.scalar)


def task_field(name: str, col: int) -> Typed:
    members = name.split(".")[1:]
    if not members:
        raise ExprError("'task' needs a member, e.g. task.tgid", col)
    try:
        found = btf.resolve(btf.load(), "task_struct", members)
    except btf.BtfError as err:
        raise ExprError(f"{name}: {err} (read from the running kernel's BTF, "
                        f"{btf.VMLINUX})", col) from None
    scalar = SCALAR_BY_SIZE[(found.size, found.signed)]
    return Typed(e.TaskRead(found.offsets, scalar), scalar)
