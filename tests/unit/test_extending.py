"""docs/extending.md, walked: for one example of each kind, the extension is made in a
scratch copy of the tree by editing only the files the doc's section names, at the
registries it names, and a spec that uses the new kind is validated and rendered there.

Also: every file, symbol and test the doc names exists; and the tests the doc lists as
spelling a list of kinds are exactly the ones a new kind of each sort breaks (slow: it runs
those test files in the scratch tree). Attaching cannot be walked without root: for an
attach kind the walk checks that its hook and its doctor try are found.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Set, Tuple

import pytest

from .util import ROOT

DOC = (ROOT / "docs" / "extending.md").read_text()

# `runner/...`, `templates/...` and the like; `<kind>` marks a placeholder.
PATH = re.compile(r"`((?:runner|templates|tests|docs|scripts)/[^`\s]*|schema\.json)`")
# `runner/x.py` `SYMBOL`: a symbol defined in that file (`Class.member` too).
PATH_SYMBOL = re.compile(r"`((?:runner|tests)/[\w/]+\.py)` `([\w.]+)`")
TEST_NAME = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")
CONSTANT = re.compile(r"`([A-Z][A-Z0-9_]{2,})`")


def sections() -> Dict[str, str]:
    """The doc's `## ` sections by title."""
    return {part.split("\n", 1)[0].strip(): part for part in DOC.split("\n## ")[1:]}


def section(title: str) -> str:
    found = [text for name, text in sections().items() if name.startswith(title)]
    assert len(found) == 1, f"docs/extending.md has no one section '{title}'"
    return found[0]


# -- (a) what the doc names exists ------------------------------------------------------------

def test_every_file_the_doc_names_exists():
    for path in PATH.findall(DOC):
        pattern = re.sub(r"<[^>]+>", "*", path.split("::")[0])
        assert list(ROOT.glob(pattern)), f"docs/extending.md names {path}: nothing there"


def _defined(tree: ast.Module) -> Dict[str, ast.AST]:
    names: Dict[str, ast.AST] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names[node.name] = node
        elif isinstance(node, ast.Assign):
            names.update({t.id: node for t in node.targets if isinstance(t, ast.Name)})
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names[node.target.id] = node
    return names


def _has(path: str, symbol: str) -> bool:
    names = _defined(ast.parse((ROOT / path).read_text()))
    top, _, member = symbol.partition(".")
    if top not in names:
        return False
    node = names[top]
    return not member or (isinstance(node, ast.ClassDef) and member in _defined(
        ast.Module(body=node.body, type_ignores=[])))


def test_every_symbol_the_doc_names_is_defined_where_it_says():
    pairs = PATH_SYMBOL.findall(DOC) + TEST_NAME.findall(DOC)
    assert len(pairs) > 20, "the doc's `path` `symbol` pairs are no longer recognised"
    for path, symbol in pairs:
        assert _has(path, symbol), f"docs/extending.md: no {symbol} in {path}"


def test_every_table_the_doc_names_is_defined():
    # The before/after tables name what 2492bac had (HASH_KINDS): only the text is checked.
    text = "\n".join(line for line in DOC.splitlines() if not line.startswith("|"))
    sources = "\n".join(p.read_text() for d in ("runner", "tests/unit")
                        for p in (ROOT / d).rglob("*.py"))
    for name in CONSTANT.findall(text):
        assert re.search(rf"^{name}\b[:=\s]", sources, re.M), \
            f"docs/extending.md names {name}, defined nowhere"


# -- the scratch tree -------------------------------------------------------------------------

class Tree:
    """A copy of the package, edited as the doc says; remembers the files it touched."""

    def __init__(self, root: Path, with_tests: bool = False):
        self.root = root
        self.touched: Set[str] = set()
        skip = shutil.ignore_patterns("__pycache__", "compiled-templates", ".venv-vng")
        for d in ("runner", "templates", "docs") + (("tests", "specs") if with_tests else ()):
            shutil.copytree(ROOT / d, root / d, symlinks=True, ignore=skip)
        for f in ("schema.json",) + (("pyproject.toml",) if with_tests else ()):
            shutil.copy(ROOT / f, root / f)

    def read(self, rel: str) -> str:
        return (self.root / rel).read_text()

    def write(self, rel: str, text: str) -> None:
        self.touched.add(rel)
        (self.root / rel).write_text(text)

    def insert_after(self, rel: str, anchor: str, text: str) -> None:
        """`text` as lines after the line holding `anchor` (the last one if several)."""
        lines = self.read(rel).splitlines(keepends=True)
        at = max(i for i, line in enumerate(lines) if anchor in line)
        self.write(rel, "".join(lines[:at + 1]) + text + "".join(lines[at + 1:]))

    def insert_before(self, rel: str, anchor: str, text: str) -> None:
        source = self.read(rel)
        at = source.index(anchor)
        self.write(rel, source[:at] + text + source[at:])

    def add_import(self, rel: str, line: str) -> None:
        tree = ast.parse(self.read(rel))
        last = max(n.end_lineno or 0 for n in tree.body
                   if isinstance(n, (ast.Import, ast.ImportFrom)))
        lines = self.read(rel).splitlines(keepends=True)
        self.write(rel, "".join(lines[:last]) + line + "\n" + "".join(lines[last:]))

    def add_row(self, rel: str, table: str, row: str) -> None:
        """A row at the end of the registration tuple of `table` (the first `for ... in
        (...)` after the line defining it)."""
        source = self.read(rel)
        start = next(i for i, line in enumerate(source.splitlines(), 1)
                     if re.match(rf"\s*(def )?{table}\b", line))
        loop = min((n for n in ast.walk(ast.parse(source))
                    if isinstance(n, ast.For) and isinstance(n.iter, ast.Tuple)
                    and n.lineno >= start), key=lambda n: n.lineno)
        last = loop.iter.elts[-1]  # type: ignore[attr-defined]
        lines = source.splitlines(keepends=True)
        offset = sum(len(line) for line in lines[:last.end_lineno - 1]) + last.end_col_offset
        self.write(rel, source[:offset] + f",\n    {row}" + source[offset:])

    def schema(self, change: Callable[[Dict[str, Any]], None]) -> None:
        doc = json.loads(self.read("schema.json"))
        change(doc)
        self.write("schema.json", json.dumps(doc, indent=2) + "\n")

    def docs_row(self, header: str, row: str) -> None:
        """A row at the end of the docs/spec.md table whose header starts `| header |`."""
        lines = self.read("docs/spec.md").splitlines(keepends=True)
        at = next(i for i, line in enumerate(lines) if line.startswith(f"| {header} |"))
        while at + 1 < len(lines) and lines[at + 1].startswith("|"):
            at += 1
        self.write("docs/spec.md", "".join(lines[:at + 1]) + row + "\n" + "".join(lines[at + 1:]))

    def edit_docs(self, change: Callable[[str], str]) -> None:
        before = self.read("docs/spec.md")
        after = change(before)
        assert after != before
        self.write("docs/spec.md", after)


def _listed(text: str, opening: str, name: str) -> str:
    """`name` added to the comma list that follows `opening` up to its `)`."""
    at = text.index(opening) + len(opening)
    close = text.index(")", at)
    return text[:close] + f", {name}" + text[close:]


# -- (b) the walks, one per section -----------------------------------------------------------

FORGET = '''"""`forget: {map: M, key: K}`: delete's twin, for the walk of docs/extending.md."""

from typing import Any, Dict

from runner.check.actions.base import ActionKind
from runner.check.actions.state import map_key, table
from runner.model.spec import Action, Forget


class ForgetKind(ActionKind):
    name = "forget"
    node = Forget

    def check(self, ck: Any, path: Any, a: Dict[str, Any], scope: Any, origin: str) -> Action:
        here = (*path, "forget")
        m = table(ck, (*here, "map"), a["forget"]["map"], "delete")
        return Forget(origin, m, map_key(ck, (*here, "key"), m, a["forget"]["key"], scope))


KIND = ForgetKind()
'''


def walk_action(t: Tree) -> None:
    t.write("runner/check/actions/forget.py", FORGET)
    t.add_import("runner/check/actions/__init__.py", "from runner.check.actions import forget")
    t.add_row("runner/check/actions/__init__.py", "ACTIONS", "forget.KIND")
    t.write("templates/action_forget.c.j2", t.read("templates/action_delete.c.j2"))
    t.insert_before("runner/model/spec.py", "Action = Union[",
                    "@dataclass(frozen=True)\nclass Forget(Delete):\n    pass\n\n\n")
    t.write("runner/model/spec.py", re.sub(r"(Action = Union\[[^\]]*)\]", r"\1, Forget]",
                                           t.read("runner/model/spec.py")))

    def schema(doc: Dict[str, Any]) -> None:
        action = doc["$defs"]["action"]
        delete = next(a for a in action["oneOf"] if a["required"] == ["delete"])
        twin = json.loads(json.dumps(delete))
        twin["required"] = ["forget"]
        twin["properties"] = {"forget": twin["properties"]["delete"]}
        action["oneOf"].append(twin)
        action["description"] = re.sub(r" or (\w+)\.$", r", \1 or forget.",
                                       action["description"])
    t.schema(schema)
    t.docs_row("action", "| `forget` | removes `map[key]` from a hash map |")


def walk_map_type(t: Tree) -> None:
    t.add_row("runner/kinds/maps.py", "MAP_KINDS",
              'MapKind("lru_percpu_hash", HASH, True, \'BPF_TABLE("lru_percpu_hash", {key}, '
              '{value}, {name}, {max});\', _TABLE_KEYS, default_key="u64", '
              'default_value="u64")')
    t.schema(lambda d: d["$defs"]["map"]["properties"]["type"]["enum"].append(
        "lru_percpu_hash"))
    t.edit_docs(lambda s: s.replace("`percpu_hash` |", "`percpu_hash`, `lru_percpu_hash` |", 1))


def walk_attach_option(t: Tree) -> None:
    t.add_row("runner/kinds/attach.py", "OPTIONS", 'AttachOption("kfunc", _fentry)')
    t.schema(lambda d: d["$defs"]["attach_target"]["properties"].__setitem__(
        "kfunc", d["$defs"]["attach_target"]["properties"]["fentry"]))
    t.docs_row("option", "| `kfunc: FUNCTION` | an fentry, by bpftrace's name |")


XDP_OPTION = '''def _xdp(target: Any, nr: Optional[int], suffix: str) -> Tuple[Planned, ...]:
    return (Planned("xdp", str(target), None, bi.XDP, None, "xdp" + suffix),)


'''

XDP_HOOK = '''def _xdp(bcc: Any, bpf: Any, cand: Candidate, name: bytes) -> Detach:
    fn = bpf.load_func(name, bcc.BPF.XDP)
    bpf.attach_xdp(cand.target, fn, 0)
    return Detach(lambda: bpf.remove_xdp(cand.target, 0))


'''

XDP_TRY = '''def _xdp(b: Any, fn: str) -> str:
    b.attach_xdp("lo", b.load_func(b"er_probe_xdp", b.XDP), 0)
    b.remove_xdp("lo", 0)
    return "lo"


'''


def walk_attach_kind(t: Tree) -> None:
    t.insert_after("runner/kinds/builtins.py", "FENTRY = ",
                   'XDP = "xdp"  # a packet at a device\'s driver: ctx is its xdp_md\n')
    attach = "runner/kinds/attach.py"
    t.add_row(attach, "CONTEXTS", 'Context(bi.XDP, "struct xdp_md *ctx", "XDP")')
    t.add_row(attach, "CANDIDATE_KINDS", 'CandidateKind("xdp", doctor=Doctor('
              '"a kernel with XDP (4.8+)", False))')
    t.insert_before(attach, "OPTIONS: Registry", XDP_OPTION)
    t.write(attach, t.read(attach).replace("from typing import ", "from typing import Any, "))
    t.add_row(attach, "OPTIONS", 'AttachOption("xdp", _xdp)')
    t.write("templates/prologue_xdp.c.j2",
            "{#- xdp: no context-dependent built-in works here. -#}\n")
    t.insert_before("runner/kernel/attach.py", "HOOKS: Registry", XDP_HOOK)
    t.insert_after("runner/kernel/attach.py", "HOOKS.register(",
                   'HOOKS.register("xdp", AttachHook(_no_precheck, _xdp))\n')
    support = "runner/kernel/probe_support.py"
    t.insert_after(support, "int er_probe_raw(",
                   "int er_probe_xdp(struct xdp_md *ctx) { return XDP_PASS; }\n")
    t.insert_before(support, "TRIES: Registry", XDP_TRY)
    t.insert_after(support, "TRIES.register(", 'TRIES.register("xdp", _xdp)\n')
    t.schema(lambda d: d["$defs"]["attach_target"]["properties"].__setitem__(
        "xdp", {"description": "Packets at a network device's driver.", "type": "string",
                "pattern": "^[A-Za-z0-9_.-]+$"}))
    t.docs_row("option", "| `xdp: DEVICE` | every packet a device receives, at its driver |")


# The hook and the doctor's try cannot run without root: they are found, as a run finds them.
CHECK_HOOK = """
from runner.cli.doctor import _doctored
from runner.kernel.attach import HOOKS, hook_for
from runner.kernel.probe_support import TRIES

cand = check(SPEC, "x86_64").probes[0].candidates[0]
assert (cand.kind, cand.target) == ("xdp", "lo"), cand
assert hook_for(cand) is HOOKS["xdp"]
assert "xdp" in [k.name for k in _doctored()] and "xdp" in TRIES
result = render(SPEC)
"""


def walk_builtin(t: Tree) -> None:
    t.add_row("runner/kinds/builtins.py", "BUILTINS", 'Builtin("cgroup_id", "u64", '
              '"bpf_get_current_cgroup_id()", _ANY, "the current task\'s cgroup v2 ID")')
    t.schema(lambda d: d["$defs"]["value"].__setitem__("description", _listed(
        d["$defs"]["value"]["description"], "a built-in (", "cgroup_id")))
    t.docs_row("built-in", "| `cgroup_id` | u64 | anywhere: the task's cgroup v2 ID |")


HEX = '''"""A number as hex: the walk of docs/extending.md."""

from runner.kinds.decoders.base import Decoder

HEX = Decoder("hex", "int", hex, keep_raw=True, doc="a number in hex: 31 -> 0x1f")
'''


def walk_decoder(t: Tree) -> None:
    t.write("runner/kinds/decoders/hex.py", HEX)
    t.add_import("runner/kinds/decoders/__init__.py", "from runner.kinds.decoders.hex import HEX")
    t.add_row("runner/kinds/decoders/__init__.py", "_for_arch", "HEX")

    def schema(doc: Dict[str, Any]) -> None:
        found = _decode_properties(doc)  # an events output's, an aggregation's
        assert len(found) == 2
        for prop in found:
            prop["description"] = _listed(prop["description"], "decoder (", "hex")
    t.schema(schema)

    def docs(text: str) -> str:
        text = _listed(text, "(decoders: ", "`hex`")
        row = text.index("| `decode` | `field: decoder`: ")
        at = text.index(" (", row)  # the list ends where its parenthesis opens
        return text[:at] + ", `hex`" + text[at:]
    t.edit_docs(docs)


def _decode_properties(node: Any) -> List[Dict[str, Any]]:
    if isinstance(node, list):
        return [p for v in node for p in _decode_properties(v)]
    if not isinstance(node, dict):
        return []
    own = [node["properties"]["decode"]] if "decode" in node.get("properties", {}) else []
    return own + [p for v in node.values() for p in _decode_properties(v)]


CHECK_HEX = """
from runner.kinds.decoders import Decoders
render(SPEC)  # the checker takes decode: {flags: hex}
hex_ = Decoders.for_arch("x86_64").get("hex")
result = f"{hex_.text(31)} {hex_.json_fields('flags', 31)}"
"""


LOGFMT = '''"""logfmt: `channel key=value ...` per event, for the walk of docs/extending.md."""

from typing import Any, Dict

from runner.output.text import TextSink


class LogfmtSink(TextSink):
    name = "logfmt"
    text_only = False
    event_text = False

    def event(self, channel: str, text: str, fields: Dict[str, Any]) -> None:
        self._lines.append(" ".join([channel] + [f"{k}={v}" for k, v in fields.items()]))
'''

CHECK_LOGFMT = """
import io
from runner.output.registry import sink_for
out = io.StringIO()
sink = sink_for("logfmt", out, io.StringIO())
sink.event("events", "", {"pid": 7, "comm": "sh"})
sink.flush()
result = out.getvalue()
"""


def walk_output_format(t: Tree) -> None:
    t.write("runner/output/logfmt.py", LOGFMT)
    t.add_import("runner/output/registry.py", "from runner.output.logfmt import LogfmtSink")
    t.insert_after("runner/output/registry.py", "FORMATS.register(",
                   'FORMATS.register("logfmt", LogfmtSink)\n')
    t.edit_docs(lambda s: s.replace("## Output formats\n", "## Output formats\n\nlogfmt: "
                                    "one `channel key=value` line per event.\n", 1))


@dataclass(frozen=True)
class Walk:
    walk: Callable[[Tree], None]
    spec: str  # a spec using the new kind, SPEC to `check`
    check: str  # Python run in the walked tree; `result` is what the test sees
    expected: Tuple[str, ...]  # all in `result`


RENDER = "result = render(SPEC)"
# doc section -> its walk
WALKS: Dict[str, Walk] = {
    "An action": Walk(
        walk_action,
        "name: forget\nmaps:\n  starts: {type: hash, key: u32}\nprobes:\n  p:\n"
        "    attach: {syscall: getppid}\n    do: [{forget: {map: starts, key: tid}}]\n",
        RENDER, ("/* probes.p.do[0] (line 7) forget */", "starts.delete(&er_key);")),
    "A map type": Walk(
        walk_map_type,
        "name: lru\nmaps:\n  calls: {type: lru_percpu_hash, key: u32}\nprobes:\n  p:\n"
        "    attach: {syscall: getppid}\n    do: [{count: {map: calls, key: pid}}]\n",
        RENDER, ('BPF_TABLE("lru_percpu_hash", u32, u64, calls, 10240);',)),
    "An attach option": Walk(
        walk_attach_option,
        "name: kf\nprobes:\n  p:\n    attach: {kfunc: do_nanosleep}\n"
        "    do: [{print: 'nanosleep {arg0}'}]\n",
        RENDER, ("KFUNC_PROBE(do_nanosleep)", "u64 er_arg0 = ctx[0];")),
    "An attach kind": Walk(
        walk_attach_kind,
        "name: packets\nprobes:\n  p:\n    attach: {xdp: lo}\n"
        "    do: [{print: 'packet on cpu {cpu}'}]\n",
        CHECK_HOOK, ("int er_p__xdp(struct xdp_md *ctx)",)),
    "A built-in": Walk(
        walk_builtin,
        "name: cg\nmaps:\n  by_cg: {type: hash}\nprobes:\n  p:\n"
        "    attach: {syscall: getppid}\n    do: [{count: {map: by_cg, key: cgroup_id}}]\n",
        RENDER, ("bpf_get_current_cgroup_id()",)),
    "A decoder": Walk(
        walk_decoder,
        "name: hx\nstructs:\n  ev:\n    - flags: u32\nmaps:\n"
        "  events: {type: ringbuf, value: ev}\nprobes:\n  p:\n"
        "    attach: {syscall: getppid}\n    do: [{emit: {to: events, set: {flags: pid}}}]\n"
        "output:\n  - events: events\n    decode: {flags: hex}\n",
        CHECK_HEX, ("0x1f {'flags': 31, 'flags_name': '0x1f'}",)),
    "An output format": Walk(walk_output_format, "", CHECK_LOGFMT, ("events pid=7 comm=sh\n",)),
}


@pytest.mark.parametrize("title", WALKS)
def test_walk(walked, title):
    named = [re.sub(r"<[^>]+>", "*", p) for p in PATH.findall(section(title))]
    for rel in walked.touched[title]:  # the walk edits only what the doc's section names
        assert any(fnmatch.fnmatch(rel, p) for p in named), \
            f"the walk of '{title}' edits {rel}, which that section of the doc does not name"
    got = walked.results[title]
    assert "error" not in got, f"{title}, walked:\n{got.get('error')}"
    for text in WALKS[title].expected:
        assert text in got["result"], got["result"]


# Runs in the walked tree, once for every kind: each kind's check apart, its result or error.
RUN_CHECKS = """
import json, sys, traceback
from runner.pipeline import check, compile_spec

def render(path):
    return compile_spec(path, "x86_64").rendered.c

results = {}
for title, (spec, code) in json.load(sys.stdin).items():
    scope = {"SPEC": spec, "check": check, "render": render}
    try:
        exec(code, scope)
        results[title] = {"result": scope["result"]}
    except Exception:
        results[title] = {"error": traceback.format_exc()}
print(json.dumps(results))
"""


@dataclass(frozen=True)
class Walked:
    """The tree with every walk made, what each walk edited and what its check gave."""

    tree: Tree
    touched: Dict[str, Set[str]]
    results: Dict[str, Dict[str, str]]


@pytest.fixture(scope="module")
def walked(tmp_path_factory) -> Walked:
    t = Tree(tmp_path_factory.mktemp("walked"), with_tests=True)
    touched: Dict[str, Set[str]] = {}
    jobs = {}
    for i, (title, w) in enumerate(WALKS.items()):
        t.touched = set()
        w.walk(t)
        touched[title] = t.touched
        (t.root / f"spec{i}.yaml").write_text(w.spec)
        jobs[title] = (f"spec{i}.yaml", w.check)
    env = {**os.environ, "EBPF_RUN_NO_CACHE": "1"}
    done = subprocess.run([sys.executable, "-c", RUN_CHECKS], cwd=t.root, env=env,
                          input=json.dumps(jobs), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return Walked(t, touched, json.loads(done.stdout))


def test_the_expectation_kind_section_is_the_registry():
    """Not walked (see the section); what it names must be what the registry holds."""
    import dataclasses

    from runner.kinds.expectations import EXPECTATIONS, ExpectationKind

    text = section("An expectation kind")
    assert re.findall(r"`(\w+):`", text.split("\n\n")[1])[1:] == list(EXPECTATIONS.names())
    fields = [f.name for f in dataclasses.fields(ExpectationKind)]
    assert all(f"`{f}`" in text for f in fields if f != "name"), fields
    items = json.loads((ROOT / "schema.json").read_text())["properties"]["tests"][
        "additionalProperties"]["properties"]["expect"]["items"]["properties"]
    assert set(EXPECTATIONS.names()) <= set(items)


# -- the tests a new kind breaks --------------------------------------------------------------

KIND_TESTS = ["test_registry.py", "test_attach_hooks.py", "test_decoders.py",
              "test_aggregations_spec.py", "test_output.py", "test_schema.py",
              "test_errors.py", "test_golden.py"]


@pytest.mark.slow
def test_a_new_kind_of_each_sort_breaks_exactly_the_tests_the_doc_names(walked):
    env = {**os.environ, "EBPF_RUN_NO_CACHE": "1"}
    env.pop("EBPF_RUN_REGEN", None)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rf", "--no-header",
         *(f"tests/unit/{f}" for f in KIND_TESTS)],
        cwd=walked.tree.root, env=env, capture_output=True, text=True, timeout=600)
    assert "error" not in done.stdout.splitlines()[-1], done.stdout[-3000:]
    failed = {re.sub(r"\[.*", "", line.split()[1])
              for line in done.stdout.splitlines() if line.startswith("FAILED ")}
    named = {f"{path}::{name}" for path, name in TEST_NAME.findall(DOC)}
    assert failed == named, (f"broken but not named in the doc: {failed - named}; named but "
                             f"not broken: {named - failed}\n{done.stdout[-3000:]}")
