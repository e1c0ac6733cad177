"""What a name in a value or a condition means, in one action's scope.

Looked up in this order: a `let` value (`delta`, `e.flags` for a struct's field), the
probe's named arguments (`args.filename`), a parameter (`params.pid`), a field of the
current task from the kernel's BTF (`task.exit_code`, `task.real_parent.tgid`; `ppid` is
the latter), then the built-ins (`pid`, `ktime`, `comm`...).
"""

from __future__ import annotations

from runner.check import btf
from runner.check.arith import Resolve, Typed
from runner.check.checker import Checker, Skip
from runner.check.expr import ExprError
from runner.check.scope import ActionScope
from runner.kinds.builtins import BUILTINS, available
from runner.model import expr as e
from runner.model.types import SCALAR_BY_SIZE, STACKS
from runner.spec.loader import PathKey
from runner.support import syscalls
from runner.support.hints import did_you_mean

# What a `let` whose value failed names: its uses are skipped without a report.
UNKNOWN = Typed(e.Local("?"), None)

# Names that read the current task through BTF, and what they stand for.
TASK_ALIASES = {"ppid": "task.real_parent.tgid"}


def use_builtin(ck: Checker, path: PathKey, name: str, scope: ActionScope) -> None:
    """Record that the actions read built-in `name`; report it if a context lacks it."""
    missing = sorted({c for c in scope.contexts if not available(name, c)})
    if missing:
        ck.err(path, f"'{name}' is not available in a {missing[0].replace('_', ' ')} "
               "program", f"{name} works in: "
               + ", ".join(sorted(BUILTINS[name].contexts)).replace("_", " "))
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
        b = BUILTINS.get(name)
        if b is None:
            # `e.fieldd` means a field of a looked-up struct, `pidd` a flat name: never both.
            hint = did_you_mean(name, [n for n in (*BUILTINS, *scope.locals, *TASK_ALIASES)
                                       if ("." in n) == ("." in name)])
            raise ExprError(f"unknown name '{name}'" + (f" ({hint})" if hint else ""), col)
        use_builtin(ck, path, name, scope)
        if b.name == "comm":
            return Typed(e.CommStr(), None, e.CommStr())
        return Typed(e.BuiltinRef(b.name), b.type)
    return resolve


def _arg(ck: Checker, path: PathKey, scope: ActionScope, name: str, col: int) -> Typed:
    arg = scope.named.get(name)
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


def _param(ck: Checker, name: str, col: int) -> Typed:
    p = ck.params.get(name)
    if p is None:
        hint = did_you_mean(name, ck.params)
        raise ExprError(f"no parameter '{name}' in params" + (f" ({hint})" if hint else ""),
                        col)
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
