"""Issue 8, bad input: every spec, however mangled, ends in success or a located error.

Structure-aware mutations of every shipped spec (drop a key, change a value's type,
swap names, out-of-range numbers, huge strings, deep nesting, hostile text, YAML
anchors/aliases, tags, merge keys, alias bombs) and raw byte mutations (including
non-UTF-8 bytes) run through the real stages in-process. The oracle for each case:

* the work is bounded by what the loader admits (MAX_NODES values after alias expansion),
  not by a wall-clock alarm: an alarm fires wherever the interpreter happens to be (once
  inside `ast`'s C code, surfacing as a SystemError) and fails on a busy machine;
* it either succeeds, or raises SpecError whose every diagnostic is located inside
  the file (line >= 1, col >= 1, the source line shown is the file's line);
  any other exception is a bug (the CLI would print a traceback);
* when it succeeds, the rendered C and Python are checked end to end: string literals
  are escaped as runner/strings.py promises, every identifier outside literals and
  comments is template vocabulary or a model name that is a real C identifier,
  comments cannot be closed early, no preprocessor line but the one include, integer
  literals fit in 64 bits; the Python parses to exactly the expected module shape;
  and the Python is loaded as `ebpf-run SPEC` loads it before touching the kernel.

A smaller sample goes through the real CLI (`python -m runner validate`): exit 0 or
exit 1 with `FILE:LINE:COL: error:`, never a traceback.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Set, Tuple, Union

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner import pipeline
from runner.codegen import render
from runner.errors import SpecError
from runner.kinds import builtins as bi
from runner.kinds.attach import CONTEXTS
from runner.kinds.maps import MAP_KINDS
from runner.model.spec import Let, Spec
from runner.model.types import SCALARS
from runner.runtime import decode
from runner.spec import loader

from .util import ROOT, tree_get, tree_paths

ARCH = "x86_64"
SPEC_FILES = sorted((ROOT / "specs").glob("*.yaml"))
BASES = {p.name: p.read_text() for p in SPEC_FILES}
FUZZ = settings(max_examples=250, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))
# The development loop (./scripts/test --fast) runs a tenth: different examples, as the
# seed comes from the test's name; the full run and CI run both.
FUZZ_SAMPLE = settings(FUZZ, max_examples=25)


# -- the oracle ----------------------------------------------------------------------------


def outcome(path: Path) -> Union[Spec, SpecError]:
    """Run one spec file through every stage `ebpf-run SPEC` runs before loading.

    Returns the model, or the SpecError once its locations are checked; anything else raises.
    """
    raw = path.read_bytes()
    try:
        spec = pipeline.check(str(path), ARCH)
    except SpecError as e:
        assert_located(e, str(path), raw)
        return e
    rendered = render.render(spec)
    assert_safe_c(rendered.c, spec)
    assert_safe_python(rendered.python, spec)
    decode.load_types(rendered.python, spec)  # run_spec does this before the kernel
    return spec


def file_lines(raw: bytes) -> List[Any]:
    try:
        return list(raw.decode("utf-8").splitlines())
    except UnicodeDecodeError:
        return list(raw.splitlines())


def assert_located(err: SpecError, file: str, raw: bytes) -> None:
    assert err.diagnostics, "a SpecError without diagnostics"
    lines = file_lines(raw)
    for d in err.diagnostics:
        loc = d.location
        where = f"{loc}: {d.message}"
        assert loc.file == file, where
        assert loc.line >= 1 and loc.col >= 1, where
        if loc.line <= len(lines):
            assert loc.col <= len(lines[loc.line - 1]) + 1, f"column past the line end: {where}"
            if d.source_line is not None:
                assert d.source_line == lines[loc.line - 1], f"wrong source line: {where}"
        else:  # only the end of the file lies past its last line
            assert (loc.line, loc.col) == (len(lines) + 1, 1), f"outside the file: {where}"
            assert d.source_line is None, where
        assert d.message.strip(), where
        assert d.render().startswith(f"{loc}: error: "), where
    assert str(err)


# -- what generated C may contain ------------------------------------------------------------

IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
NUMBER = re.compile(r"[0-9][A-Za-z0-9_]*")
INT_LITERAL = re.compile(r"(0|[1-9][0-9]*)(LL|ULL|U)?|0[xX][0-9a-fA-F]+")
# The ptrace header, linux/sched.h (a probe on several syscalls tests the task's TS_COMPAT),
# and the headers a context's row names (perf_event's sample struct).
INCLUDES = {"#include <uapi/linux/ptrace.h>", "#include <linux/sched.h>",
            *(f"#include <{c.header}>" for c in CONTEXTS.values() if c.header)}
_JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S)
_QUOTED = re.compile(r"\"([^\"]*)\"|'([^']*)'")


def _template_vocabulary() -> Set[str]:
    """Identifiers the templates and the C-producing tables can print on their own."""
    words: Set[str] = set()
    for t in (ROOT / "templates").glob("*.j2"):
        text = t.read_text()
        # Jinja tags contribute only the text of their string constants (e.g. "er_key.").
        words |= set(IDENT.findall(_JINJA.sub(" ", text)))
        for tag in _JINJA.findall(text):
            for a, b in _QUOTED.findall(tag):
                words |= set(IDENT.findall(a or b))
    fragments = [b.c for b in bi.BUILTINS.values()] + [c.signature for c in CONTEXTS.values()]
    fragments += [c.header for c in CONTEXTS.values() if c.header]
    fragments += [r for regs in bi.SYSCALL_REGS.values() for r in (regs[0], *regs[1])]
    fragments += [k.declaration for k in MAP_KINDS.values()] + list(render._PLAIN_C.values())
    fragments += [s.c for s in SCALARS.values()]
    fragments += _python_c_constants()
    for f in fragments:
        words |= set(IDENT.findall(_JINJA.sub(" ", f.replace("{", " ").replace("}", " "))))
    return words


def _python_c_constants() -> List[str]:
    """The constant text of the codegen modules that spell C in Python (values, strings):
    every string constant and f-string part, never what is substituted into them."""
    out: List[str] = []
    for name in ("c_expr.py", "c_strings.py"):
        tree = ast.parse((ROOT / "runner" / "codegen" / name).read_text())
        out += [n.value for n in ast.walk(tree)
                if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    return out


VOCABULARY = frozenset(_template_vocabulary())
# A parameter is a constant of the program: exactly this line per parameter.
PARAM_DEFINE = re.compile(r"#define er_param_([A-Za-z_][A-Za-z0-9_]*) \(\((u|s)(8|16|32|64)\)"
                          r"-?[0-9]+U?LL\)  /\* params\.\1 \(line [0-9]+\) \*/")


def model_names(spec: Spec) -> Set[str]:
    """Names the model puts into code; each must be a C identifier, nothing more."""
    names: Set[str] = set()
    for s in spec.structs:
        names.add(s.name)
        names |= {m.name for m in s.members}
    names |= {m.name for m in spec.maps}
    names |= {n for m in spec.stacks for n in (m.name, m.value)}
    if spec.stack_pids is not None:
        names.add(spec.stack_pids.ring.name)
    # An array key or value is wrapped in a struct named after its map (render._map_decl).
    names |= {f"er_{w}_{m.name}" for m in spec.maps for w in ("key", "value")}
    fns = [c.function for p in spec.probes for c in p.candidates]
    fns += [f for p in spec.programs for f in p.functions]
    names |= {f.c_name for f in fns}
    names |= {k for f in fns if (k := getattr(f, "kfunc", None))}  # fentry: the function
    # A let's locals and a parameter's constant: a checked identifier behind a prefix.
    lets = {x.name for f in fns for x in _walk(f.actions) if isinstance(x, Let)}
    names |= {f"er_{p}_{n}" for n in lets for p in "vkp"}
    names |= {f"er_param_{p.name}" for p in getattr(spec, "params", ())}
    for n in names:
        assert IDENT.fullmatch(n), f"a name in the model is not a C identifier: {n!r}"
    return names


def _walk(node: object) -> Iterator[object]:
    """Every model node under `node` (dataclasses, tuples)."""
    yield node
    if isinstance(node, tuple):
        for x in node:
            yield from _walk(x)
    elif dataclasses.is_dataclass(node) and not isinstance(node, type):
        for f in dataclasses.fields(node):
            if f.name != "map":  # a map is a leaf here; its name is listed above
                yield from _walk(getattr(node, f.name))


def c_literal_bytes(lit: str) -> bytes:
    """Decode a C string literal the way runner/strings.py writes them; refuse anything else."""
    assert len(lit) >= 2 and lit[0] == lit[-1] == '"', lit
    body, out, i = lit[1:-1], bytearray(), 0
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            octal = body[i + 1:i + 4]
            assert re.fullmatch(r"[0-7]{3}", octal), f"bad escape in C literal {lit!r}"
            out.append(int(octal, 8))
            i += 4
            continue
        assert 0x20 <= ord(ch) < 0x7F and ch not in '"?', f"unescaped {ch!r} in {lit!r}"
        out.append(ord(ch))
        i += 1
    return bytes(out)


def c_tokens(c: str) -> Iterator[Tuple[str, str, int]]:
    """(kind, text, offset) for comments, string literals, identifiers, numbers, punctuation."""
    i, n = 0, len(c)
    while i < n:
        ch = c[i]
        if ch.isspace():
            i += 1
        elif c.startswith("/*", i):
            j = c.find("*/", i + 2)
            assert j >= 0, f"unterminated comment at offset {i}"
            yield "comment", c[i + 2:j], i
            i = j + 2
        elif c.startswith("//", i):
            raise AssertionError(f"line comment in generated C: {c[i:i + 60]!r}")
        elif ch == '"':
            j = i + 1
            while j < n and c[j] != '"':
                assert c[j] != "\n", f"raw newline in a C string literal: {c[i:j + 20]!r}"
                j += 2 if c[j] == "\\" else 1
            assert j < n, "unterminated C string literal"
            yield "string", c[i:j + 1], i
            i = j + 1
        elif ch == "'":
            raise AssertionError(f"character literal in generated C: {c[i:i + 20]!r}")
        elif (m := IDENT.match(c, i)) is not None:
            yield "ident", m.group(), i
            i = m.end()
        elif (m := NUMBER.match(c, i)) is not None:
            yield "number", m.group(), i
            i = m.end()
        else:
            yield "punct", ch, i
            i += 1


def assert_safe_c(c: str, spec: Spec) -> None:
    allowed = VOCABULARY | model_names(spec)
    includes = 0
    for kind, text, at in c_tokens(c):
        line_start = c.rfind("\n", 0, at) + 1
        line_end = c.find("\n", at)
        line = c[line_start:line_end if line_end >= 0 else len(c)]
        if kind == "string":
            c_literal_bytes(text)
        elif kind == "comment":
            assert "/*" not in text, f"comment opens another comment: {text!r}"
            # Every comment the templates write ends its line; more code after `*/` on
            # the same line means text from the spec closed it early.
            end = at + 2 + len(text) + 2
            rest = c[end:c.find("\n", end) if c.find("\n", end) >= 0 else len(c)]
            assert rest.strip() == "", f"code after a comment on its line: {line!r}"
            for cont in text.split("\n")[1:]:
                assert re.match(r"\s*(\*|$)", cont), f"comment line without ' * ': {cont!r}"
        elif kind == "ident":
            assert text in allowed, f"identifier {text!r} is neither template vocabulary " \
                                    f"nor a name of the spec, in: {line!r}"
        elif kind == "number":
            assert INT_LITERAL.fullmatch(text), f"odd number token {text!r} in {line!r}"
            digits = re.sub(r"(LL|ULL|U)$", "", text)
            assert int(digits, 0) < 2**64, f"integer literal {text} does not fit in 64 bits"
        elif text == "#" and PARAM_DEFINE.fullmatch(line):
            assert at == line_start and line.split()[1] in allowed, line
        elif text == "#":
            assert line in INCLUDES and at == line_start, f"preprocessor line {line!r}"
            includes += 1
    assert includes <= len(INCLUDES)  # each header once, only where a program needs it


# -- what the generated Python may contain -------------------------------------------------


def assert_safe_python(py: str, spec: Spec) -> None:
    """The module has exactly the expected statements; spec text only in constants."""
    tree = ast.parse(py)  # a SyntaxError here means spec text reached the code
    structs = list(spec.structs)
    kinds = [type(n).__name__ for n in tree.body]
    assert kinds == ["Expr", "Import", *["ClassDef"] * len(structs), "Assign", "FunctionDef",
                     "Expr", *["FunctionDef"] * len(structs)], kinds
    doc = ast.get_docstring(tree, clean=False) or ""
    head = f"Generated by ebpf-run from {spec.file} (spec {spec.name!r}, {spec.arch})."
    assert doc.startswith(head), f"module docstring {doc[:200]!r} does not start {head!r}"
    classes = tree.body[2:2 + len(structs)]
    getters = tree.body[-len(structs):] if structs else []
    for s, cls, fn in zip(structs, classes, getters):
        assert isinstance(cls, ast.ClassDef) and cls.name == s.name
        assert [type(n).__name__ for n in cls.body] == ["Expr", "Assign"]
        value = cls.body[1].value  # type: ignore[attr-defined]
        assert isinstance(value, ast.List)
        names = [e.elts[0].value for e in value.elts]  # type: ignore[attr-defined]
        assert names == [m.name for m in s.members]
        assert isinstance(fn, ast.FunctionDef) and fn.name == f"er_fields_{s.name}"
        ret = fn.body[-1]
        assert isinstance(ret, ast.Return) and isinstance(ret.value, ast.Dict)
        keys = [k.value for k in ret.value.keys]  # type: ignore[union-attr]
        assert keys == [m.name for m in s.layout.fields]
    layout = ast.literal_eval(tree.body[2 + len(structs)].value)  # type: ignore[attr-defined]
    assert layout == {s.name: (s.layout.size, {m.name: m.offset for m in s.members})
                      for s in structs}


# -- structure-aware mutations ---------------------------------------------------------------

Tree = Any
Draw = Callable[..., Any]

NAMES = ("hello", "output", "data_t", "syscall", "counter_table", "pid", "comm", "ctx",
         "u32", "switch", "class", "None", "er_x", "ER_y", "_pad0", "int", "struct",
         "execve", "sys_enter", "x" * 64, "x" * 65, "a-b", "1abc", "", "é", "p\n", "p ",
         " p", "true", "on", "null", "~", "-1", "0", "9" * 30, "\u0130", "K")
VALID_NAMES = ("a", "x_1", "Data", "_", "_x", "A" * 64, "int_", "ctx_", "er", "pad", "u128",
               "P0", "switch_", "print", "emit", "count", "value", "key", "format", "type",
               "name", "main", "printf", "system", "bpf_trace_printk", "BPF_HASH", "lookup")
HOSTILE = (
    '"); system("rm -rf /"); ("', "*/ int evil; /*", "*/", "/*", "\n#include </etc/passwd>\n",
    "\\", "\\\\x41", "??=", "??/", "%s%n%p", "{", "}", "{0}", "{pid}", "{{pid}}", "{pid!x}",
    "{pid:s}", "{nosuch}", "{pid.real}", "{comm[0]}", "\0", "\x01\x1b[31m", "\t\r", "\x7f",
    "\u2028", "\x85", "é€𝄞", "\ufeff", "'''", '"""', "\\N{", "${HOME}", "$(id)", "`id`",
    "<<", "&a", "*a", "!!python/object/apply:os.system", "---", "...", "# not a comment",
    "key: value", "- item", "[1, 2", "pid == 1 && uid != 0", "((((((((((pid == 1))))))))))",
    "pid == 010", "pid == 0x", "pid == 99999999999999999999999", "u64[4]", "char[0]",
    "char[65537]", "data_t[2]", "char *", "u32*", "struct data_t", "/bin/true:main",
    "/a*/int/**/evil;/*:sym", "a:b", "syscalls:sys_enter_execve", "raw_syscalls:sys_enter",
)
ZOO: Tuple[Any, ...] = (
    None, True, False, 0, 1, -1, 1.5, 2.0, 64.0, float("nan"), float("inf"), -float("inf"),
    "", "x", "pid", [], {}, [1], [{}], {"a": 1}, {"literal": "x"}, [[[]]], 2**64, -(2**63) - 1,
)
NUMBERS = (0, 1, -1, 2, 3, 255, 256, 4095, 4096, 4097, 65535, 65536, 65537, 16777216,
           16777217, 2**31 - 1, 2**31, 2**32, 2**63 - 1, 2**63, 2**64 - 1, 2**64, 10**30,
           -(2**63), -(2**63) - 1, 10**400, 0.5, 1e-300, 1e300)
TAGGED = (
    '!!python/object/apply:os.system ["true"]', "!!python/name:os.system",
    "!!python/object/new:object []", '!!python/module:os ""', "!!binary aGVsbG8=",
    "!!set {a: null}", "!!omap [{a: 1}]", "!!pairs [{a: 1}]", "!custom x", "!!str 5",
    '!!int "5"', '!!int "abc"', '!!int ""', '!!float "x"', '!!bool "maybe"', "!!null x",
    "!!timestamp 2001-12-14", '!!map "x"', '!!seq "x"', "!<tag:yaml.org,2002:str> x",
    "!<tag:yaml.org,2002:python/object:object> {}",
)


def _set(tree: Tree, path: Tuple[Any, ...], value: Any) -> Tree:
    if not path:
        return value
    tree_get(tree, path[:-1])[path[-1]] = value
    return tree


def _pick(draw: Draw, tree: Tree, want: Callable[[Tuple[Any, ...]], bool]) -> Optional[tuple]:
    paths = [p for p in tree_paths(tree) if want(p)]
    return draw(st.sampled_from(paths)) if paths else None


def _placeholder(raw: Dict[str, str], text: str) -> str:
    token = f"zzraw{len(raw)}zz"
    raw[token] = text
    return token


def _in_dict(tree: Tree) -> Callable[[Tuple[Any, ...]], bool]:
    return lambda p: bool(p) and isinstance(tree_get(tree, p[:-1]), dict)


def op_drop(draw: Draw, tree: Tree, raw: Dict[str, str]) -> Tree:
    path = _pick(draw, tree, lambda p: bool(p))
    if path:
        del tree_get(tree, path[:-1])[path[-1]]
    return tree


def op_retype(draw: Draw, tree: Tree, raw: Dict[str, str]) -> Tree:
    path = _pick(draw, tree, lambda p: True)
    return _set(tree, path or (), copy.deepcopy(draw(st.sampled_from(ZOO))))


def _rename(tree: Tree, path: Tuple[Any, ...], new: str) -> None:
    parent = tree_get(tree, path[:-1])
    items = [(new if k == path[-1] else k, v) for k, v in parent.items()]
    parent.clear()
    parent.update(items)


def op_rename_key(draw: Draw, tree: Tree, raw: Dict[str, str]) -> Tree:
    path = _pick(draw, tree, _in_dict(tree))
    if path:
        _rename(tree, path, draw(st.sampled_from(NAMES + HOSTILE)))
    return tree


def op_swap_names(draw: Draw, tree: Tree, raw: Dict[str, str]) -> Tree:
    """Swap two strings of the spec (values), or give a key the name of another key."""
    strings = [p for p in tree_paths(tree) if isinstance(tree_get(tree, p), str)]
    keys = [p for p in tree_paths(tree) if _in_dict(tree)(p)]
    if draw(st.booleans()) and len(strings) >= 2:
        a, b = draw(st.sampled_from(strings)), draw(st.sampled_from(strings))
        va, vb = tree_get(tree, a), tree_get(tree, b)
        _set(tree, a, vb)
        _set(tree, b, va)
    elif len(keys) >= 2:
        a, b = draw(st.sampled_from(keys)), draw(st.sampled_from(keys))
        if str(b[-1]) not in tree_get(tree, a[:-1]):
            _rename(tree, a, str(b[-1]))
    return tree


def op_number(draw: Draw, tree: Tree, raw: Dict[str, str]) -> Tree:
    path = _pick(draw, tree, lambda p: True)
    value = tree_get(tree, path or ())
    n = draw(st.sampled_from(NUMBERS))
    if isinstance(value, str) and re.search(r"\d+", value) and isinstance(n, int):
        return _set(tree, path or (), re.sub(r"\d+", str(n), value, count=1))
    return _set(tree, path or (), n)


def op_huge(draw: Draw, tree: Tree, raw: Dict[str, str]) -> Tree:
    size = draw(st.sampled_from((65, 257, 513, 1025, 4097, 70_000)))
    unit = draw(st.sampled_from(("A", "é", "{pid}", "*/", '"', "\\", "x_")))
    text = (unit * size)[:size]
    path = _pick(draw, tree, lambda p: isinstance(tree_get(tree, p), str) or _in_dict(tree)(p))
    if path and _in_dict(tree)(path) and draw(st.booleans()):
        _rename(tree, path, text)
        return tree
    return _set(tree, path or (), text)


def op_hostile(draw: Draw, tree: Tree, raw: Dict[str, str]) -> Tree:
    path = _pick(draw, tree, lambda p: isinstance(tree_get(tree, p), str))
    if path is None:
        return tree
    value, bad = tree_get(tree, path), draw(st.sampled_from(HOSTILE))
    where = draw(st.sampled_from(("replace", "prefix", "suffix")))
    new = bad if where == "replace" else bad + value if where == "prefix" else value + bad
    return _set(tree, path, new)


def op_deep(draw: Draw, tree: Tree, raw: Dict[str, str]) -> Tree:
    depth = draw(st.sampled_from((10, 60, 65, 200, 1_000, 30_000)))
    kind = draw(st.sampled_from(("list", "map", "action")))
    if kind == "list":
        text = "[" * depth + "]" * depth
    elif kind == "map":
        text = "{a: " * depth + "1" + "}" * depth
    else:  # nested `if` actions, which the meaning checker walks recursively
        text = '{if: "pid == 1", then: [' * depth + '{print: "x"}' + "]}" * depth
    path = _pick(draw, tree, lambda p: True)
    return _set(tree, path or (), _placeholder(raw, text))


def op_alias(draw: Draw, tree: Tree, raw: Dict[str, str]) -> Tree:
    """Make one place share another's mapping or list: the dumper writes &anchor / *alias."""
    src = _pick(draw, tree, lambda p: bool(p) and isinstance(tree_get(tree, p), (dict, list)))
    dst = _pick(draw, tree, lambda p: bool(p))
    if src and dst and src[:len(dst)] != dst and dst[:len(src)] != src:
        before = tree_get(tree, dst)
        _set(tree, dst, tree_get(tree, src))
        if not _acyclic(tree):  # sharing through an earlier alias made a loop: undo
            _set(tree, dst, before)
    return tree


def _acyclic(node: Tree, active: Tuple[int, ...] = ()) -> bool:
    if not isinstance(node, (dict, list)):
        return True
    if id(node) in active:
        return False
    children = node.values() if isinstance(node, dict) else node
    return all(_acyclic(c, (*active, id(node))) for c in children)


def op_tag(draw: Draw, tree: Tree, raw: Dict[str, str]) -> Tree:
    path = _pick(draw, tree, lambda p: bool(p))
    return _set(tree, path or (), _placeholder(raw, draw(st.sampled_from(TAGGED))))


def bomb(levels: int, width: int = 10) -> str:
    """A billion-laughs document fragment in flow style: width**levels leaves."""
    parts = ["&l0 [" + ", ".join(["lol"] * width) + "]"]
    parts += [f"&l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]" for i in range(1, levels)]
    return "[" + ", ".join(parts) + "]"


def op_bomb(draw: Draw, tree: Tree, raw: Dict[str, str]) -> Tree:
    levels = draw(st.sampled_from((3, 4, 9)))  # 1e3 and 1e4 values are fine, 1e9 is not
    path = _pick(draw, tree, lambda p: True)
    return _set(tree, path or (), _placeholder(raw, bomb(levels)))


def op_merge(draw: Draw, tree: Tree, raw: Dict[str, str]) -> Tree:
    path = _pick(draw, tree, lambda p: bool(p))
    return _set(tree, path or (), _placeholder(raw, "{<<: &m {type: hash}, max_entries: 8}"))


def op_rename_everywhere(draw: Draw, tree: Tree, raw: Dict[str, str]) -> Tree:
    """Rename a declared name (struct, field, map, probe, program) and every use of it."""
    declared = [str(p[-1]) for p in tree_paths(tree) if len(p) >= 2 and _in_dict(tree)(p)
                and p[0] in ("structs", "maps", "probes", "programs")
                and (len(p) == 2 or p[0] == "structs")]
    if not declared or not isinstance(tree, dict):
        return tree
    old = draw(st.sampled_from(declared))
    new = draw(st.one_of(st.sampled_from(VALID_NAMES), st.sampled_from(NAMES + HOSTILE),
                         st.sampled_from(VALID_NAMES).map(lambda n: n + "\n")))

    def walk(node: Tree) -> Tree:
        if isinstance(node, dict):
            return {(new if k == old else k): walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return new if node == old else node

    return walk(tree)


FORMATS = ("{pid:>{uid}}", "{key[0]}", "{value!r}", "{pid:c}", "{command:d}", "{key:x}",
           "{value:,}", "{value[pid]}", "{message!a:^30}", "{pid:s}", "{uid.real}", "{0}")
# (a test on a mapping, a key that belongs in such a mapping, values to try)
ADDITIONS: Tuple[Tuple[Callable[[Any], bool], str, Tuple[Any, ...]], ...] = (
    (lambda d: "type" in d, "pages", (1, 3, 64, 2.0, 64.0, 65536, 131072, 0, -1)),
    (lambda d: "type" in d, "bytes", (4096, 8192.0, 4095, 12288, 268435456, 2**40)),
    (lambda d: "type" in d, "max_entries", (1, 0, 2.0, 500, 16777216, 16777217, 2**63)),
    (lambda d: "type" in d, "key", ("u32", "u64", "data_t", "char[16]", "u8[3]", "s8", "")),
    (lambda d: "type" in d, "value", ("u32", "u64", "data_t", "char[16]", "u8[3]", "s8")),
    (lambda d: "attach" in d, "optional", (True, False, "yes", 1)),
    (lambda d: "attach" in d or "name" in d, "description", HOSTILE),
    (lambda d: "map" in d, "every", (0.001, 1e-300, float("nan"), float("inf"), -1, 0, 86400,
                                     86401, True, "2")),
    (lambda d: "map" in d or "events" in d, "format", HOSTILE + FORMATS),
    (lambda d: "map" in d, "separator", HOSTILE),
    (lambda d: "map" in d, "at_exit", (False, True, None)),
    (lambda d: "name" in d, "messages", ({"via": "trace_pipe"}, {"pages": 2.0}, {"pages": 3},
                                         {"via": "buffer", "pages": 1}, {"via": "kafka"})),
    (lambda d: "set" in d, "set", ({"pid": "tid", "uid": 2**40}, {"command": "comm"},
                                   {"message": "x" * 12}, {"message": "é" * 5},
                                   {"pid": {"literal": "pid"}}, {"command": 7})),
)
ACTIONS: Tuple[Any, ...] = (
    *({"print": t} for t in HOSTILE + FORMATS),
    {"print": "{comm} {pid} {tid} {uid} {gid} {cpu} {ktime} {syscall_nr} {arg0} {arg5}"},
    {"print": "{retval}"},
    {"if": "pid == 1 || !(uid != 0) && syscall_nr >= -1", "then": [{"print": "x"}],
     "else": [{"print": "y {pid}"}]},
    {"if": "comm == 1", "then": []},
    {"if": "pid == 0x10000000000000000", "then": []},
    {"choose": {"value": "syscall_nr", "cases": {"execve": [], "-1": [], "0": []},
                "default": [{"print": "d"}]}},
    {"choose": {"value": "pid", "cases": {"1": [], "01": []}}},
    {"choose": {"value": "syscall_nr", "cases": {"nosuchcall": []}}},
    {"count": {"map": "counter_table", "key": "comm"}},
    {"add": {"map": "counter_table", "key": "uid", "value": -1}},
    {"add": {"map": "counter_table", "key": {"literal": "x"}, "value": "ktime"}},
    {"emit": {"to": "output", "set": {"message": {"literal": '"); /*'}}}},
    {"emit": {"to": "output", "set": {"pid": 2**31}}},
    {"tail_call": {"map": "syscall", "index": -1}},
    {"tail_call": {"map": "syscall", "index": "comm"}},
)


def op_add_key(draw: Draw, tree: Tree, raw: Dict[str, str]) -> Tree:
    """Add an optional key where it belongs, with a plausible or a hostile value."""
    dicts = [p for p in tree_paths(tree) if isinstance(tree_get(tree, p), dict)]
    options = [(p, key, values) for p in dicts for test, key, values in ADDITIONS
               if test(tree_get(tree, p))]
    if options:
        path, key, values = draw(st.sampled_from(options))
        tree_get(tree, path)[key] = copy.deepcopy(draw(st.sampled_from(values)))
    return tree


def op_add_action(draw: Draw, tree: Tree, raw: Dict[str, str]) -> Tree:
    """Append an action, of any kind, to some list of actions."""
    lists = [p for p in tree_paths(tree) if p and p[-1] in ("do", "then", "else", "default")
             and isinstance(tree_get(tree, p), list)]
    if lists:
        path = draw(st.sampled_from(lists))
        tree_get(tree, path).append(copy.deepcopy(draw(st.sampled_from(ACTIONS))))
    return tree


# Weighted: the operations that tend to keep a spec valid come more often, so the checks on
# generated code see many accepted specs, not only the loader's refusals.
TREE_OPS = (*[op_rename_everywhere, op_add_key, op_add_action] * 4, op_hostile, op_drop,
            op_retype, op_rename_key, op_swap_names, op_number, op_huge, op_deep, op_alias,
            op_tag, op_bomb, op_merge)

CHUNKS = (b"\xff", b"\xfe\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf",
          b"\xe2\x82", b"\xef\xbb\xbf", b"\x00", b"\x01", b"\x1b", b"\x7f", b"\xc2\x85",
          b"\xe2\x80\xa8", b": ", b"- ", b"&a ", b"*a ", b"*nosuch ", b"!!python/object/apply:"
          b'os.system ["true"] ', b"<<: ", b"\t", b"\r", b"\r\n", b"\n  ", b"\n", b"{", b"}",
          b"[", b"]", b",", b"'", b'"', b"%YAML 1.1\n---\n", b"---\n", b"...\n", b"? ",
          b"|\n", b">-\n", b"#", b"@", b"`", b"%", b"\\", b"\\x", b'"\\u12"', b"9" * 5000)


def op_byte_flip(draw: Draw, data: bytes) -> bytes:
    if not data:
        return data
    i = draw(st.integers(0, len(data) - 1))
    return data[:i] + bytes([draw(st.integers(0, 255))]) + data[i + 1:]


def op_byte_insert(draw: Draw, data: bytes) -> bytes:
    i = draw(st.integers(0, len(data)))
    return data[:i] + draw(st.sampled_from(CHUNKS)) + data[i:]


def op_byte_delete(draw: Draw, data: bytes) -> bytes:
    i = draw(st.integers(0, len(data)))
    return data[:i] + data[i + draw(st.integers(1, 40)):]


def op_line(draw: Draw, data: bytes) -> bytes:
    """Duplicate (a duplicate key, often), swap, drop or re-indent a line; or truncate."""
    lines = data.split(b"\n")
    i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
    how = draw(st.sampled_from(("dup", "swap", "drop", "indent", "dedent", "truncate")))
    if how == "dup":
        lines.insert(j, lines[i])
    elif how == "swap":
        lines[i], lines[j] = lines[j], lines[i]
    elif how == "drop":
        del lines[i]
    elif how == "indent":
        lines[i] = b"  " + lines[i]
    elif how == "dedent":
        lines[i] = lines[i][2:]
    else:
        return data[:draw(st.integers(0, len(data)))]
    return b"\n".join(lines)


BYTE_OPS = (op_byte_flip, op_byte_insert, op_byte_delete, op_line)


@st.composite
def mutated_specs(draw: Draw) -> Tuple[str, bytes]:
    """(base spec name, bytes): a shipped spec after tree mutations, then byte mutations."""
    base = draw(st.sampled_from(sorted(BASES)))
    tree = yaml.safe_load(BASES[base])
    raw: Dict[str, str] = {}
    for _ in range(draw(st.integers(1, 3))):
        tree = draw(st.sampled_from(TREE_OPS))(draw, tree, raw)
    text = yaml.safe_dump(tree, sort_keys=False, allow_unicode=draw(st.booleans()),
                          default_flow_style=draw(st.sampled_from((False, None, True))),
                          width=draw(st.sampled_from((80, 100_000))))
    for token, replacement in raw.items():
        text = text.replace(token, replacement)
    data = text.encode("utf-8")
    if draw(st.integers(0, 9)) < 2:  # raw byte damage on two cases in ten
        for _ in range(draw(st.integers(1, 2))):
            data = draw(st.sampled_from(BYTE_OPS))(draw, data)
    return base, data


# -- the fuzz tests --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.mark.parametrize("spec", [*SPEC_FILES, *sorted((ROOT / "tests" / "data" / "golden")
                                                      .glob("*.yaml"))], ids=lambda p: p.name)
def test_the_oracle_accepts_every_shipped_and_golden_spec(spec):
    """So that a failure below is the mutation's, not the oracle's."""
    assert isinstance(outcome(spec), Spec)


def mutated_outcome(fuzz_dir: Path, case: Tuple[str, bytes]) -> None:
    _, data = case
    path = fuzz_dir / "mutated.yaml"
    path.write_bytes(data)
    outcome(path)


@pytest.mark.slow
@FUZZ
@given(case=mutated_specs())
def test_mutated_specs_end_in_success_or_a_located_error(fuzz_dir, case):
    mutated_outcome(fuzz_dir, case)


@FUZZ_SAMPLE
@given(case=mutated_specs())
def test_a_sample_of_mutated_specs_end_in_success_or_a_located_error(fuzz_dir, case):
    mutated_outcome(fuzz_dir, case)


@pytest.mark.slow
@settings(max_examples=30, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(case=mutated_specs())
def test_cli_validate_on_mutated_specs_never_shows_a_traceback(fuzz_dir, case):
    _, data = case
    path = fuzz_dir / "cli.yaml"
    path.write_bytes(data)
    res = subprocess.run([sys.executable, "-m", "runner", "validate", str(path)], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    assert res.returncode in (0, 1), res.stderr
    if res.returncode == 1:
        assert re.match(rf"{re.escape(str(path))}:\d+:\d+: error: ", res.stderr), res.stderr
        assert re.search(r"\n\d+ errors?\n?$", res.stderr), res.stderr
    else:
        assert res.stdout.startswith(f"{path}: ok (")


# -- targeted cases: each kind of bad input, written out ------------------------------------

HELLO = BASES["hello.yaml"]
PROBE = "name: x\nprobes:\n  p:\n    attach: {syscall: execve}\n    do:\n%s"
EVENTS = ("name: x\nstructs:\n  s:\n    - t: u64\n    - m: char[8]\nmaps:\n"
          "  o: {type: ringbuf, value: s%s}\nprobes:\n  p:\n    attach: {syscall: execve}\n"
          "    do:\n      - emit: {to: o, set: %s}\n")


def _deep_block(depth: int) -> str:
    return "name: x\nd:\n" + "".join("  " * i + "- \n" for i in range(1, depth)) \
        + "  " * depth + "- 1\n"


# id -> spec text (or bytes). Each must end in success with safe code, or a located error.
CASES: Dict[str, Any] = {
    "python-tag-os-system": 'name: !!python/object/apply:os.system ["touch pwned"]\n' + HELLO[
        HELLO.index("probes:"):],
    "python-tag-via-tag-directive": "%TAG !e! tag:yaml.org,2002:\n---\n"
                                    "name: !e!python/object/apply:os.system [x]\n",
    "python-name-tag": "name: x\ndescription: !!python/name:os.system\n",
    "unknown-local-tag": "name: !foo x\n",
    "binary-tag": "name: !!binary aGVsbG8=\n",
    "int-tag-on-text": 'name: x\ndescription: !!int "abc"\n',
    "int-tag-on-empty": 'name: x\ndescription: !!int ""\n',
    "int-tag-on-sign": 'name: x\ndescription: !!int "-"\n',
    "int-tag-sexagesimal-junk": 'name: x\ndescription: !!int "1:"\n',
    "float-tag-on-text": 'name: x\ndescription: !!float "x"\n',
    "bool-tag-on-text": 'name: x\ndescription: !!bool "maybe"\n',
    "map-tag-on-scalar": 'name: x\ndescription: !!map "x"\n',
    "billion-laughs": "name: x\ndescription: " + bomb(9) + "\n",
    "billion-laughs-in-actions": PROBE % ("      - &b0 {print: x}\n" + "".join(
        f'      - &b{i} {{if: "pid == 1", then: [{", ".join([f"*b{i - 1}"] * 10)}]}}\n'
        for i in range(1, 10))),
    "recursive-alias": "name: x\ndescription: &a [*a]\n",
    "undefined-alias": "name: *nope\n",
    "merge-key": "name: x\nmaps:\n  m: {<<: {type: hash}}\n",
    "deep-flow-lists": "name: x\ndescription: " + "[" * 5000 + "]" * 5000 + "\n",
    "deep-flow-maps": "name: x\ndescription: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n",
    "deep-block-lists": _deep_block(400),
    "deep-if-actions": PROBE % ('      - ' + '{if: "pid == 1", then: [' * 40 + '{print: x}'
                                + "]}" * 40 + "\n"),
    "huge-integer": "name: x\nmaps:\n  m: {type: hash, max_entries: " + "9" * 5000 + "}\n",
    "huge-hex-integer": "name: x\nmaps:\n  m: {type: hash, max_entries: 0x" + "f" * 5000 + "}\n",
    "huge-string": "name: x\ndescription: " + "A" * 1_000_000 + "\n",
    "huge-key": "name: x\nmaps:\n  ? " + "m" * 100_000 + "\n  : {type: hash}\n",
    "duplicate-nested-key": "name: x\nmaps:\n  m: {type: hash}\n  m: {type: array}\n",
    "keys-that-yaml-1.1-converts": "name: x\nmaps:\n  on: {type: hash}\n  'yes': {type: hash}\n",
    "non-utf8-start": b"\xff\xfename: x\n",
    "non-utf8-middle": b"name: x\ndescription: caf\xe9\n",
    "utf8-surrogate": b"name: x\ndescription: \xed\xa0\x80\n",
    "utf8-overlong": b"name: x\ndescription: \xc0\xaf\n",
    "nul-byte": "name: x\n\0",
    "bom": "\ufeff" + HELLO,
    "crlf": HELLO.replace("\n", "\r\n"),
    "cr-only": HELLO.replace("\n", "\r"),
    "unicode-line-separators": "name: x\u2028description: y\n",
    "tab-indent": "name: x\nprobes:\n\tp: {}\n",
    "two-documents": "name: x\n---\nname: y\n",
    "yaml-1.2-directive": "%YAML 1.2\n---\n" + HELLO,
    "only-comments": "# nothing\n# here\n",
    "top-level-list": "- name: x\n",
    "top-level-scalar": "hello\n",
    "non-scalar-key": "name: x\n[a]: 1\n",
    "null-key": "name: x\n? \n: 1\n",
    "float-message-pages": PROBE % "      - print: hi\n" + "messages: {pages: 64.0}\n",
    "float-ringbuf-pages": EVENTS % (", pages: 2.0", "{t: ktime}"),
    "float-ringbuf-bytes": EVENTS % (", bytes: 8192.0", "{t: ktime}"),
    "float-for-a-char-field": EVENTS % ("", "{m: 2.0}"),
    "float-for-an-integer-field": EVENTS % ("", "{t: 2.0}"),
    "nan-interval": "name: x\nmaps:\n  m: {type: hash}\nprobes:\n  p:\n    attach: "
                    "{syscall: execve}\n    do: [{count: {map: m, key: pid}}]\noutput:\n"
                    "  - {map: m, every: .nan}\n",
    "octal-looking-number-in-condition": PROBE % '      - if: "pid == 010"\n        then: []\n',
    "huge-number-in-condition": PROBE % ('      - if: "pid == 99999999999999999999999"\n'
                                         "        then: []\n"),
    "case-label-beyond-64-bits": PROBE % ("      - choose:\n          value: pid\n"
                                          "          cases: {'99999999999999999999': []}\n"),
    "case-label-of-5000-digits": PROBE % ("      - choose:\n          value: pid\n"
                                          "          cases:\n            ? '" + "9" * 5000
                                          + "'\n            : []\n"),
    "tail-slot-of-5000-digits": (
        "name: x\nmaps:\n  t: {type: prog_array, max_entries: 8}\nprobes:\n  p:\n"
        "    attach: {raw_tracepoint: sys_enter}\n    do: [{tail_call: {map: t, index: 1}}]\n"
        "programs:\n  a: {do: []}\ntail_calls:\n  t:\n    entries:\n      ? '" + "1" * 5000
        + "'\n      : a\n"),
    "struct-of-2^67-bytes": (
        "name: x\nstructs:\n  a: [{x: 'u64[65536]'}]\n  b: [{x: 'a[65536]'}]\n"
        "  c: [{x: 'b[65536]'}]\n  d: [{x: 'c[65536]'}]\nmaps:\n  o: {type: ringbuf, value: d}\n"
        "probes:\n  p:\n"
        "    attach: {syscall: execve}\n    do: [{emit: {to: o}}]\n"),
    "name-with-trailing-newline": 'name: "x\\n"\n' + HELLO[HELLO.index("probes:"):],
    "probe-name-with-trailing-newline": PROBE.replace("  p:", '  "p\\n":') % "      - print: hi\n",
    "map-name-with-trailing-newline": (
        'name: x\nmaps:\n  "m\\n": {type: hash}\nprobes:\n  p:\n    attach: {syscall: execve}\n'
        '    do: [{count: {map: "m\\n", key: pid}}]\n'),
    "struct-and-field-names-with-trailing-newline": (
        'name: x\nstructs:\n  "s\\n": [{"f\\n": u32}]\n  t: [{"g\\n": u32}]\nmaps:\n'
        '  o: {type: ringbuf, value: t}\nprobes:\n  p:\n    attach: {syscall: execve}\n'
        '    do: [{emit: {to: o, set: {"g\\n": pid}}}]\n'),
    "uprobe-path-closing-a-comment": PROBE.replace(
        "{syscall: execve}", '{uprobe: "/x*/int/**/evil;/*:main"}') % "      - print: hi\n",
    "tracepoint-with-trailing-newline": PROBE.replace(
        "{syscall: execve}", '{tracepoint: "a:b\\n"}') % "      - print: hi\n",
    "print-injection-via-trace-pipe": PROBE % '      - print: "\\"); system(\\"x\\"); /* */"\n'
                                      + "messages: {via: trace_pipe}\n",
    "print-percent-via-trace-pipe": PROBE % '      - print: "%s%n %d {pid}"\n'
                                    + "messages: {via: trace_pipe}\n",
    "literal-injection": EVENTS % ("", '{m: {literal: "\\");/*"}}'),
}


@pytest.mark.parametrize("case", sorted(CASES), ids=str)
def test_bad_input_ends_in_success_or_a_located_error(tmp_path, case):
    data = CASES[case]
    path = tmp_path / "spec.yaml"
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    outcome(path)


# id -> (spec text, LINE of the expected error, words of which the message names one)
MUST_FAIL: Dict[str, Tuple[str, int, str]] = {
    "python-tag": ('name: x\ndescription: !!python/object/apply:os.system ["touch pwned"]\n',
                   2, "tag"),
    "alias-bomb": ("name: x\ndescription: " + bomb(9) + "\n", 2, "alias|expands"),
    "control-character-on-line-3": ("name: x\ndescription: y\nprobes: \x01\n", 3,
                                    "character"),
    "bad-utf8-on-line-2": ("name: x\ndescription: caf\udce9\n", 2, "UTF-8"),
    "print-format-spec-for-an-integer": (PROBE % '      - print: "{pid:s}"\n', 6, "format"),
    "print-conversion-that-does-not-exist": (PROBE % '      - print: "{pid!x}"\n', 6, "format"),
    "print-attribute-of-an-integer": (PROBE % '      - print: "{pid.nosuch}"\n', 6,
                                      "format|pid"),
    "print-index-into-an-integer": (PROBE % '      - print: "{uid[0]}"\n', 6, "format|uid"),
    "event-format-spec-for-an-integer": (EVENTS % ("", "{t: ktime}")
                                         + "output:\n  - {events: o, format: '{t:s}'}\n",
                                         14, "format"),
    "nan-interval": (CASES["nan-interval"], 9, "every"),
    "negative-interval-names-the-interval": (CASES["nan-interval"].replace(".nan", "-1"),
                                             9, "every"),
    "bad-events-format-names-the-format": (EVENTS % ("", "{t: ktime}")
                                           + "output:\n  - {events: o, format: 1}\n",
                                           14, "format"),
}


@pytest.mark.parametrize("case", sorted(MUST_FAIL), ids=str)
def test_bad_input_is_a_located_error_at_its_line(tmp_path, case):
    text, line, word = MUST_FAIL[case]
    path = tmp_path / "spec.yaml"
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    err = outcome(path)
    assert isinstance(err, SpecError), "accepted"
    first = err.diagnostics[0]
    assert first.location.line == line, first.render()
    assert any(w.lower() in first.message.lower() for w in word.split("|")), first.render()
    assert not (tmp_path / "pwned").exists()


def test_alias_bombs_are_refused_at_the_node_bound(tmp_path):
    """The loader counts values as aliases expand and stops at MAX_NODES: the work an
    alias bomb can cause is bounded by that count, whatever the machine's speed."""
    for levels in (6, 9, 30):
        path = tmp_path / "bomb.yaml"
        path.write_text("name: x\ndescription: " + bomb(levels) + "\n")
        err = outcome(path)
        assert isinstance(err, SpecError) and "alias bomb" in str(err)
        assert f"more than {loader.MAX_NODES} values" in str(err)


def count_actions(actions: Any) -> int:
    """Every action in a tree of model actions (branches included)."""
    total = 0
    for action in actions:
        total += 1
        for name in ("then", "otherwise"):
            total += count_actions(getattr(action, name, ()))
        for case in getattr(action, "cases", ()):
            total += count_actions(case.actions)
    return total


@pytest.mark.slow  # the largest spec the loader admits: seconds through every stage
def test_alias_amplification_below_the_bound_is_accepted_and_bounded(tmp_path):
    """Valid aliases just under the node bound: the largest spec the loader lets through.
    What it costs is bounded by the node count, not by time: 8,863 actions reach the model."""
    refs = ", ".join(["*i1"] * 20)
    path = tmp_path / "amplified.yaml"
    path.write_text(
        PROBE % ('      - &i1 {if: "pid == 1", then: [&m {print: "hi {pid}"}' + ", *m" * 19
                 + "]}\n" + f'      - &i2 {{if: "pid == 2", then: [{refs}]}}\n'
                 + '      - {if: "pid == 3", then: [' + ", ".join(["*i2"] * 20) + "]}\n"))
    spec = outcome(path)
    assert isinstance(spec, Spec)
    actions = count_actions(spec.probes[0].candidates[0].function.actions)
    i1 = 1 + 20  # an `if` and its 20 prints
    i2 = 1 + 20 * i1
    assert actions == i1 + i2 + (1 + 20 * i2), actions
    assert actions < loader.MAX_NODES


# -- injection, end to end: no spec text reaches the code but as a literal or an identifier --

PAYLOADS = (
    '"); system("x"); ("', "*/ system(x); /*", "x\n#include <evil.h>\n", "\\", "??/", "%n",
    "\n", "x\n", "é€𝄞", "{pid}", "*/", "'''", '"""', "\\N{", "a\x00b",
)
# where -> a spec with @@ where the payload goes, as a YAML double-quoted string
PLACES = {
    "name": "name: @@\n" + HELLO[HELLO.index("probes:"):],
    "description": "name: x\ndescription: @@\n" + HELLO[HELLO.index("probes:"):],
    "probe-description": PROBE.replace("    attach", "    description: @@\n    attach")
    % "      - print: hi\n",
    "probe-name": PROBE.replace("  p:", "  @@:") % "      - print: hi\n",
    "map-name": ("name: x\nmaps:\n  @@: {type: hash}\nprobes:\n  p:\n"
                 "    attach: {syscall: execve}\n    do: [{count: {map: @@, key: pid}}]\n"),
    "struct-name": ("name: x\nstructs:\n  @@: [{a: u32}]\nmaps:\n  o: {type: ringbuf, "
                    "value: @@}\nprobes:\n  p:\n    attach: {syscall: execve}\n"
                    "    do: [{emit: {to: o}}]\n"),
    "field-name": ("name: x\nstructs:\n  s: [{@@: u32}]\nmaps:\n  o: {type: ringbuf, "
                   "value: s}\nprobes:\n  p:\n    attach: {syscall: execve}\n"
                   "    do: [{emit: {to: o, set: {@@: pid}}}]\n"),
    "field-type": "name: x\nstructs:\n  s: [{a: @@}]\n",
    "print": PROBE % "      - print: @@\n",
    "print-via-trace-pipe": PROBE % "      - print: @@\n" + "messages: {via: trace_pipe}\n",
    "string-field": EVENTS.replace("char[8]", "char[64]") % ("", "{m: @@}"),
    "literal-field": EVENTS.replace("char[8]", "char[64]") % ("", "{m: {literal: @@}}"),
    "condition": PROBE % "      - if: @@\n        then: [{print: hi}]\n",
    "case-label": PROBE % ("      - choose:\n          value: syscall_nr\n"
                           "          cases: {@@: [{print: hi}]}\n"),
    "tracepoint": PROBE.replace("{syscall: execve}", "{tracepoint: @@}") % "      - print: hi\n",
    "raw-tracepoint": PROBE.replace("{syscall: execve}", "{raw_tracepoint: @@}")
    % "      - print: hi\n",
    "uprobe": PROBE.replace("{syscall: execve}", "{uprobe: @@}") % "      - print: hi\n",
    "kprobe": PROBE.replace("{syscall: execve}", "{kprobe: @@}") % "      - print: hi\n",
    "events-format": EVENTS % ("", "{t: ktime}") + "output:\n  - {events: o, format: @@}\n",
    "map-separator": ("name: x\nmaps:\n  m: {type: hash}\nprobes:\n  p:\n    attach: "
                      "{syscall: execve}\n    do: [{count: {map: m, key: pid}}]\n"
                      "output:\n  - {map: m, separator: @@}\n"),
}


def _yaml_str(text: str) -> str:
    return '"' + "".join(f"\\u{ord(c):04x}" if ord(c) < 0x10000 else f"\\U{ord(c):08x}"
                         for c in text) + '"'


@pytest.mark.parametrize("place", sorted(PLACES), ids=str)
def test_hostile_text_anywhere_in_a_spec_never_reaches_code(tmp_path, place):
    """Each payload, in each place a spec carries text, for uprobe also inside a path."""
    failures = []
    for i, payload in enumerate(PAYLOADS):
        text = payload if place != "uprobe" else f"/bin/{payload}:main"
        path = tmp_path / f"p{i}.yaml"
        path.write_text(PLACES[place].replace("@@", _yaml_str(text)))
        try:
            outcome(path)
        except Exception as e:
            first = (str(e).splitlines() or [""])[0]
            failures.append(f"{payload!r}: {type(e).__name__}: {first[:300]}")
    assert not failures, "\n".join(failures)


FILE_NAMES = ("plain.yaml", "a*/b.yaml", "x*", "q'uote.yaml", 'dq"uote.yaml', 'x""".yaml',
              "back\\slash.yaml", "back\\N{x}.yaml", "new\nline.yaml", "%s{pid}.yaml",
              "é€.yaml", 'x"""+__import__("os").system("touch pwned")+""".yaml')


@pytest.mark.parametrize("name", FILE_NAMES, ids=repr)
def test_a_spec_file_name_never_reaches_code(tmp_path, name):
    """The path given on the command line is printed in the generated headers too."""
    parts = name.split("/")
    target = tmp_path.joinpath(*parts)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(HELLO)
    assert isinstance(outcome(target), Spec)
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()


# -- the same through the real command line -------------------------------------------------

CLI_CASES = ("python-tag-os-system", "billion-laughs", "deep-flow-lists", "huge-integer",
             "non-utf8-middle", "int-tag-on-text", "float-message-pages", "nul-byte")
CLI_SAMPLE = ("python-tag-os-system", "non-utf8-middle")  # in the development loop too


@pytest.mark.parametrize("case", [c if c in CLI_SAMPLE else pytest.param(c, marks=pytest.mark.slow)
                                  for c in CLI_CASES], ids=str)
def test_cli_validate_and_render_answer_bad_input_with_a_located_error(tmp_path, case):
    data = CASES[case]
    path = tmp_path / "spec.yaml"
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    for cmd in ("validate", "render"):
        started = time.monotonic()
        res = subprocess.run([sys.executable, "-m", "runner", cmd, str(path)], cwd=tmp_path,
                             capture_output=True, text=True, timeout=60)
        assert time.monotonic() - started < 30
        assert "Traceback" not in res.stderr, res.stderr[-3000:]
        assert res.returncode == 1, (res.returncode, res.stderr[-2000:])
        assert re.match(rf"{re.escape(str(path))}:\d+:\d+: error: ", res.stderr), res.stderr
    assert not (tmp_path / "pwned").exists()


def test_fuzz_helpers_catch_real_injections():
    """The checks above would notice the attacks they are meant to: a self-test."""
    spec = pipeline.check(str(ROOT / "specs" / "hello.yaml"), ARCH)
    good = render.render(spec)
    assert_safe_c(good.c, spec)
    assert_safe_python(good.python, spec)
    bad_c = (
        good.c.replace("/* messages:", '/* x */ system("x"); /* messages:'),
        good.c.replace("BPF_RINGBUF_OUTPUT", "#define X 1\nBPF_RINGBUF_OUTPUT"),
        good.c,  # unchanged: accepted
        good.c.replace("er_messages,", "er_messages, 99999999999999999999,"),
        good.c.replace("(spec \"hello\"", "(spec \"hel\nlo\""),
        good.c + '\nchar *x = "a\nb";\n',
        good.c + '\nchar *x = "a??/";\n',
        good.c + "\nint evil;\n",
    )
    verdicts = []
    for c in bad_c:
        try:
            assert_safe_c(c, spec)
            verdicts.append(True)
        except AssertionError:
            verdicts.append(False)
    assert verdicts == [False, False, True, False, False, False, False, False]
    with pytest.raises((AssertionError, SyntaxError)):
        assert_safe_python(good.python.replace("(spec 'hello'", '(spec """hello'), spec)
