"""Stage 4: render the model into BPF C and a Python ctypes module.

Pure and deterministic: the output depends only on the model (no time, no
absolute paths, no set or dict order that Python's hash seed could change).
Templates loop and branch; the few spellings they need come from the filters
below, which read the type table, the kinds registries (a map
type's declaration, a context's signature and prologue) and runner/codegen/c_expr.py.
"""

from __future__ import annotations

import re
import typing
from typing import TYPE_CHECKING, Any, List, Tuple

from runner.codegen.c_expr import array_into, c_type, spell, string_into
from runner.codegen.strings import c_bytes, c_string, py_literal
from runner.kinds.attach import CONTEXTS
from runner.kinds.builtins import SYSCALL_EXIT_RAW, SYSCALL_RAW, SYSCALL_REGS
from runner.kinds.maps import MAP_KINDS
from runner.kinds.registry import UnknownKind
from runner.model.spec import Action, Assign, Function, Map, Rendered, Spec
from runner.model.types import SCALARS, Member, TypeRef
from runner.support.resources import names, read_text

if TYPE_CHECKING:  # imported when first rendering: a cache hit unpickles Rendered without it
    import jinja2


def _map_decl(m: Map) -> str:
    # An array key or value (char[16], u64[4]) cannot be a macro argument the way BCC
    # uses it (`_key_type key;`): it is wrapped in a struct of one member, `key`/`value`,
    # whose bytes are the array's, so user space reads them unchanged.
    wrappers = "".join(
        f"struct er_{which}_{m.name} {{ {c_type(TypeRef(t.base))} {which}[{t.count}]; }};\n"
        for which, t in (("key", m.key), ("value", m.value))
        if t is not None and t.count is not None)
    return wrappers + MAP_KINDS.lookup(m.kind).declaration.format(
        name=m.name, key=_map_c(m, "key"), value=_map_c(m, "value"), max=m.max_entries,
        pages=m.pages)


def _map_c(m: Map, which: str) -> str:
    """The C type of a map's key or value, as declared by _map_decl."""
    t = m.key if which == "key" else m.value
    return f"struct er_{which}_{m.name}" if t is not None and t.count is not None else c_type(t)


def _c_member(m: Member) -> str:
    base = f"struct {m.type.base}" if m.type.is_struct else m.type.scalar.c  # type: ignore
    dims = f"[{m.type.count}]" if m.type.count is not None else ""
    return f"{base} {m.name}{dims}"


def _ctypes_type(m: Member) -> str:
    base = m.type.base if m.type.is_struct else m.type.scalar.ctypes  # type: ignore
    base = base.replace("ctypes.", "er_ctypes.")
    return f"{base} * {m.type.count}" if m.type.count is not None else base


def _py_decode(m: Member, ref: str) -> str:
    if m.type.is_string:  # ctypes returns a char array's bytes up to the first NUL
        return f'{ref}.decode("utf-8", "replace")'
    if m.type.is_struct:
        one = f"er_fields_{m.type.base}"
        return f"[{one}(x) for x in {ref}]" if m.type.count is not None else f"{one}({ref})"
    return f"list({ref})" if m.type.count is not None else ref


def _has_ring(spec: Spec) -> bool:
    """Whether a spec map is a ring buffer (the wakeup helper is then needed)."""
    return any(MAP_KINDS.lookup(m.kind).ring for m in spec.maps)


def _needs_ptrace(spec: Spec) -> bool:
    """Whether the C reads struct pt_regs: parsing its header costs clang about 18 ms."""
    fns = [c.function for p in spec.probes for c in p.candidates]
    fns += [f for prog in spec.programs for f in prog.functions]
    return any(_reads_pt_regs(f) for f in fns)


def _headers(spec: Spec) -> List[str]:
    """Kernel headers the functions' contexts need for their ctx struct (sorted), and
    linux/sched.h for a raw syscall option's test of 32-bit syscalls (compat_guard.c.j2)."""
    fns = [c.function for p in spec.probes for c in p.candidates]
    fns += [f for prog in spec.programs for f in prog.functions]
    headers = {h for f in fns if (h := CONTEXTS.lookup(f.context).header)}
    if any(_drops_compat(f, spec) for f in fns):
        headers.add("linux/sched.h")
    return sorted(headers)


def _drops_compat(f: Function, spec: Spec) -> bool:
    """Whether a raw sys_enter/sys_exit function on several syscalls must first drop 32-bit
    syscalls: on x86_64, whose ia32 syscalls have numbers of their own. (The raw option of
    one syscall, a fallback for kernels without syscalls:* tracepoints, is left as it was:
    the test would put linux/sched.h in every syscall spec's compile. arm64's compat tasks
    are left too: their test is a thread flag, not done here yet.)"""
    return spec.arch == "x86_64" and f.context in (SYSCALL_RAW, SYSCALL_EXIT_RAW) \
        and bool(f.filter_nrs)


def _reads_pt_regs(f: Function) -> bool:
    how = CONTEXTS.lookup(f.context).pt_regs
    return how == "always" or (how == "if_used" and bool(f.needs_args or f.needs_nr))


# The most bytes one __builtin_memset or __builtin_memcpy may cover: LLVM's BPF backend
# inlines them as at most 128 stores of 8 bytes and calls exit(1) on anything larger
# (measured with BCC 0.26 / LLVM 14: 1024 passes, 1025 does not).
PIECE = 1024


def _pieces(size: int) -> List[Tuple[int, int]]:
    """(offset, length) pieces of `size` bytes, each small enough for LLVM to inline."""
    return [(off, min(PIECE, size - off)) for off in range(0, size, PIECE)] or [(0, 0)]


def _zero_loop(size: int) -> Tuple[int, int, int]:
    """How to zero a ring record of `size` bytes: (0, 0, 0) for one memset LLVM inlines,
    else the u64 words a loop clears and the (offset, length) of the bytes after them."""
    if size <= PIECE:
        return 0, 0, 0
    return size // 8, size - size % 8, size % 8


def _string_pieces(a: Assign) -> List[Tuple[int, str, int]]:
    """A string literal's bytes and its NUL as (offset, C literal, length) pieces."""
    data = str(a.value).encode("utf-8") + b"\0"
    if len(data) <= PIECE:
        return [(0, c_string(str(a.value)), a.size)]
    # Each piece is copied without C's own NUL, so its literal stops one byte short.
    return [(off, c_bytes(data[off:off + n]), n) for off, n in _pieces(len(data))]


def action_fragment(node: type) -> str:
    """The template that spells an action's model node: templates/action_<node>.c.j2, the
    class name in snake case (TailCall -> action_tail_call.c.j2; count and add share Update's).
    tests/unit/test_registry.py checks that every node has its template and every template
    its node."""
    if node.__name__ not in _ACTION_NODES:
        raise UnknownKind(f"internal error: {node.__name__} is not a model action")
    return "action_" + re.sub(r"(?<!^)(?=[A-Z])", "_", node.__name__).lower() + ".c.j2"


def _action_fragment(a: Any) -> str:
    return action_fragment(type(a))


# The names of runner.model.spec.Action's members (some are forward references).
_ACTION_NODES = frozenset(getattr(a, "__forward_arg__", getattr(a, "__name__", ""))
                          for a in typing.get_args(Action))

# The kernel's EEXIST, which a map insert returns negated; Linux's number on every arch.
EEXIST = 17


def template_environment(code: jinja2.BytecodeCache) -> jinja2.Environment:
    """Jinja with the filters the templates use, taking compiled templates from `code`."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(lambda name: read_text("templates", name)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
        bytecode_cache=code,
    )
    env.filters.update(
        map_decl=_map_decl, map_c=_map_c, c_member=_c_member, ctypes_type=_ctypes_type,
        py_decode=_py_decode, pyrepr=py_literal, action_fragment=_action_fragment,
        map_kind=lambda m: MAP_KINDS.lookup(m.kind), has_ring=_has_ring,
        needs_ptrace=_needs_ptrace, headers=_headers, drops_compat=_drops_compat,
        c_expr=spell, string_into=string_into, c_type=c_type,
        array_into=array_into,
        c_string=c_string, c_bytes=c_bytes,
        signature=lambda fn: CONTEXTS.lookup(fn.context).signature,
        prologue=lambda fn: CONTEXTS.lookup(fn.context).prologue,
        nr_register=lambda arch: SYSCALL_REGS[arch][0],
        zero_loop=_zero_loop, string_pieces=_string_pieces,
        arg_register=lambda arch, i: SYSCALL_REGS[arch][1][i],
    )
    env.globals["EEXIST"] = EEXIST
    return env


def template_names() -> List[str]:
    return [n for n in names("templates") if n.endswith(".j2")]


_env: List[jinja2.Environment] = []


def environment() -> jinja2.Environment:
    if not _env:
        # Templates compiled at install time (template_cache.py), else from source.
        from runner.codegen.template_cache import InstalledBytecode

        _env.append(template_environment(InstalledBytecode()))
    return _env[0]


def render_c(spec: Spec) -> str:
    return _tidy(environment().get_template("program.c.j2").render(spec=spec))


def render_python(spec: Spec) -> str:
    return _tidy(environment().get_template("types.py.j2").render(spec=spec))


def render_structs_c(spec: Spec) -> str:
    """Only the structs and their asserts: what plain clang can check without BCC."""
    prelude = "".join(f"typedef {_PLAIN_C[s.name]} {s.c};\n" for s in SCALARS.values())
    return prelude + environment().get_template("structs.c.j2").render(spec=spec)


_PLAIN_C = {"u8": "unsigned char", "u16": "unsigned short", "u32": "unsigned int",
            "u64": "unsigned long long", "s8": "signed char", "s16": "short", "s32": "int",
            "s64": "long long"}


def render(spec: Spec) -> Rendered:
    return Rendered(render_c(spec), render_python(spec))


def _tidy(text: str) -> str:
    """Collapse runs of blank lines left by template control blocks; end with one newline."""
    out: List[str] = []
    for line in text.splitlines():
        line = line.rstrip()
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip("\n") + "\n"
