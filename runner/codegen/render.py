"""Stage 4: render the model into BPF C and a Python ctypes module.

Pure and deterministic: the output depends only on the model (no time, no
absolute paths, no set or dict order that Python's hash seed could change).
Templates loop and branch; the few spellings they need come from the filters
below, which read the layout table rather than compute anything new.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, List

from runner.kinds.builtins import SYSCALL_REGS
from runner.model.spec import Choose, Emit, If, Map, Print, Rendered, Spec, TailCall, Update
from runner.model.types import SCALARS, Member
from runner.support.resources import read_text

if TYPE_CHECKING:  # imported when first rendering: a cache hit unpickles Rendered without it
    import jinja2

from runner.codegen.strings import py_literal

_MAP_DECL = {
    "hash": "BPF_HASH({name}, {key}, {value}, {max});",
    "lru_hash": 'BPF_TABLE("lru_hash", {key}, {value}, {name}, {max});',
    "percpu_hash": "BPF_PERCPU_HASH({name}, {key}, {value}, {max});",
    "array": "BPF_ARRAY({name}, {value}, {max});",
    "percpu_array": "BPF_PERCPU_ARRAY({name}, {value}, {max});",
    "perf_event_array": "BPF_PERF_OUTPUT({name});  /* {pages} pages per CPU, set when opened */",
    "ringbuf": "BPF_RINGBUF_OUTPUT({name}, {pages});",
    "prog_array": "BPF_PROG_ARRAY({name}, {max});",
}




def _map_decl(m: Map) -> str:
    return _MAP_DECL[m.kind].format(name=m.name, key=m.key_c, value=m.value_c,
                                    max=m.max_entries, pages=m.pages)


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


_PTRACE_CONTEXTS = ("kprobe", "kretprobe", "syscall_kprobe")


def _needs_ptrace(spec: Spec) -> bool:
    """Whether the C reads struct pt_regs: parsing its header costs clang about 18 ms."""
    fns = [c.function for p in spec.probes for c in p.candidates]
    fns += [f for prog in spec.programs for f in prog.functions]
    return any(f.context in _PTRACE_CONTEXTS
               or (f.context == "syscall_raw" and (f.needs_args or f.needs_nr)) for f in fns)


def _action_kind(a: Any) -> str:
    kinds = {Print: "print", Emit: "emit", Update: "update", TailCall: "tail_call",
             Choose: "choose", If: "if"}
    return kinds[type(a)]


def _environment() -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(lambda name: read_text("templates", name)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters.update(
        map_decl=_map_decl, c_member=_c_member, ctypes_type=_ctypes_type,
        py_decode=_py_decode, pyrepr=py_literal, action_kind=_action_kind,
        needs_ptrace=_needs_ptrace,
        nr_register=lambda arch: SYSCALL_REGS[arch][0],
        arg_register=lambda arch, i: SYSCALL_REGS[arch][1][i],
    )
    return env


_env: List[jinja2.Environment] = []


def environment() -> jinja2.Environment:
    if not _env:
        _env.append(_environment())
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
