"""Stage 3: the meaning checker. Turns a schema-valid document into the model.

The schema has already checked shapes; this stage checks what the names and
values mean (unknown names with hints, types that do not fit, literals too long,
tail-call targets, formats) and collects every problem before raising, so a user
fixes a spec in one pass. Everything the templates print is decided here.
"""

from __future__ import annotations

import builtins as py_builtins
import contextlib
import keyword
import string
from dataclasses import replace
from typing import Any, Dict, Iterable, List, Optional, Set, Tuple

from runner.check import expr
from runner.codegen.strings import c_string, comment_text
from runner.errors import Diagnostic, SpecError
from runner.kinds import builtins as bi
from runner.model.spec import (
    Action,
    Assign,
    Candidate,
    Case,
    Choose,
    Drop,
    Emit,
    EventOutput,
    Function,
    If,
    Map,
    MapOutput,
    MessageDef,
    Print,
    Probe,
    Program,
    Spec,
    Struct,
    TableFill,
    TailCall,
    Update,
)
from runner.model.types import SCALARS, TypeRef, TypeSyntaxError, lay_out, parse_type
from runner.spec.loader import Document, PathKey
from runner.support import syscalls
from runner.support.hints import did_you_mean, known

C_KEYWORDS = frozenset({
    "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else",
    "enum", "extern", "float", "for", "goto", "if", "inline", "int", "long", "register",
    "restrict", "return", "short", "signed", "sizeof", "static", "struct", "switch", "typedef",
    "union", "unsigned", "void", "volatile", "while", "_Bool", "_Complex", "_Imaginary",
    "_Alignas", "_Alignof", "_Atomic", "_Generic", "_Noreturn", "_Static_assert",
    "_Thread_local", "asm", "typeof",
})
# Type names and BCC/kernel words a map, struct or field must not shadow in the C.
RESERVED = frozenset(SCALARS) | {"ctx", "bool", "true", "false", "NULL", "size_t", "ssize_t"}
HASH_KINDS = ("hash", "lru_hash", "percpu_hash")
ARRAY_KINDS = ("array", "percpu_array")
BUFFER_KINDS = ("perf_event_array", "ringbuf")
DEFAULT_PAGES = {"perf_event_array": 64, "ringbuf": 256}
PAGE = 4096
MAX_STRUCT = 65536
MAX_PERF_EVENT = 400  # perf events are built on the 512-byte BPF stack
COMM_LEN = 16
EEXIST = 17


def build(doc: Document, arch: Optional[str] = None) -> Spec:
    """Check the meaning of `doc` and return its model; raise SpecError with every problem."""
    b = _Builder(doc, arch or syscalls.host_arch())
    spec = b.run()
    if b.diags:
        uniq = {(d.location.line, d.location.col, d.message): d for d in b.diags}
        raise SpecError(sorted(uniq.values(), key=lambda d: (d.location.line, d.location.col)))
    assert spec is not None
    return spec


class _Skip(Exception):
    """An element already reported; leave it out of the model and go on."""


class _Builder:
    def __init__(self, doc: Document, arch: str):
        self.doc = doc
        self.data = doc.data
        self.arch = arch
        self.diags: List[Diagnostic] = []
        try:
            self.sysnums = syscalls.table(arch)
        except KeyError:
            self.sysnums = {}
            self.err((), f"no syscall table for architecture '{arch}'",
                     "supported: x86_64, aarch64")
        self.structs: Dict[str, Struct] = {}
        self.maps: Dict[str, Map] = {}
        self.drops: List[Drop] = []
        self.messages: List[MessageDef] = []
        self.msg_structs: List[Struct] = []
        self.via = self.data.get("messages", {}).get("via", "buffer")
        self.messages_map: Optional[Map] = None
        self.fentry_owners: Dict[str, str] = {}

    # -- reporting -------------------------------------------------------------------------

    def err(self, path: PathKey, message: str, hint: Optional[str] = None,
            *, key: bool = False) -> None:
        self.diags.append(self.doc.diagnostic(path, message, hint, key=key))

    def origin(self, path: PathKey) -> str:
        text = ".".join(str(p) for p in path)
        for i in (p for p in path if isinstance(p, int)):
            text = text.replace(f".{i}", f"[{i}]", 1)
        return comment_text(f"{text} (line {self.doc.where(path).line})")

    def name_ok(self, path: PathKey, name: str, what: str) -> bool:
        problem = None
        if name in C_KEYWORDS or keyword.iskeyword(name):
            problem = f"{what} name '{name}' is a C or Python keyword"
        elif what != "field" and (name in RESERVED or name in bi.BUILTINS):
            problem = f"{what} name '{name}' is reserved (a type or built-in)"
        elif name.lower().startswith("er_") or name.startswith("_pad"):
            problem = f"{what} name '{name}' uses a prefix reserved for generated code"
        if problem:
            self.err(path, problem, "choose another name", key=True)
        return problem is None

    # -- the whole spec --------------------------------------------------------------------

    def run(self) -> Optional[Spec]:
        self.build_structs()
        self.build_maps()
        self.add_messages_map()
        names = self.check_program_names()
        contexts, owners = self.program_contexts()
        probes = [p for p in (self.build_probe(n, owners) for n in self.data.get("probes", {}))
                  if p]
        programs = [self.build_program(n, contexts.get(n, ()))
                    for n in self.data.get("programs", {})]
        self.check_tail_tables(names)
        events = self.build_event_outputs()
        map_outputs = self.build_map_outputs()
        if self.diags:
            return None
        return Spec(
            name=self.data["name"], file=comment_text(self.doc.file), arch=self.arch,
            structs=tuple(self.structs.values()) + tuple(self.msg_structs),
            maps=tuple(self.maps.values()), probes=tuple(probes),
            programs=tuple(p for p in programs if p), drops=tuple(self.drops),
            messages=tuple(self.messages), messages_via=self.via,
            message_buffer=self.messages_map if self.messages else None,
            events=events, map_outputs=map_outputs,
        )

    # -- structs ---------------------------------------------------------------------------

    def build_structs(self) -> None:
        raw = self.data.get("structs", {})
        parsed: Dict[str, List[Tuple[str, TypeRef, str]]] = {}
        for sname, fields in raw.items():
            path: PathKey = ("structs", sname)
            self.name_ok(path, sname, "struct")
            if sname in py_builtins.__dict__:
                self.err(path, f"struct name '{sname}' shadows a Python built-in",
                         "choose another name", key=True)
            seen: Set[str] = set()
            out = []
            for i, entry in enumerate(fields):
                (fname, tname), = entry.items()
                fpath = (*path, i, fname)
                if fname in seen:
                    self.err(fpath, f"duplicate field '{fname}' in struct '{sname}'", key=True)
                seen.add(fname)
                self.name_ok(fpath, fname, "field")
                t = self.parse_type(fpath, tname)
                if t:
                    out.append((fname, t, self.origin(fpath)))
            parsed[sname] = out
        for sname in self.struct_order(parsed):
            if any(t.is_struct and t.base not in self.structs for _, t, _ in parsed[sname]):
                continue  # a struct it contains was refused, and reported
            layout = lay_out(tuple(parsed[sname]), {k: v.layout for k, v in
                                                   self.structs.items()})
            if layout.size > MAX_STRUCT:
                self.err(("structs", sname), f"struct '{sname}' is {layout.size} bytes; the "
                         f"limit is {MAX_STRUCT} (the largest BPF map value)", key=True)
                continue
            self.structs[sname] = Struct(sname, layout, self.origin(("structs", sname)))

    def parse_type(self, path: PathKey, text: str) -> Optional[TypeRef]:
        try:
            t = parse_type(text)
        except TypeSyntaxError as e:
            self.err(path, str(e))
            return None
        if t.is_struct and t.base not in self.data.get("structs", {}):
            self.err(path, f"unknown type '{t.base}'",
                     did_you_mean(t.base, [*SCALARS, *self.data.get("structs", {})])
                     or known("types", SCALARS))
            return None
        return t

    def struct_order(self, parsed: Dict[str, List[Tuple[str, TypeRef, str]]]) -> List[str]:
        """Structs in an order where each comes after the structs it contains."""
        order: List[str] = []
        state: Dict[str, str] = {}

        def visit(name: str, trail: Tuple[str, ...]) -> bool:
            if state.get(name) == "done":
                return True
            if state.get(name) == "active":
                self.err(("structs", name), "struct contains itself: "
                         + " -> ".join((*trail, name)), key=True)
                return False
            state[name] = "active"
            ok = all(visit(t.base, (*trail, name)) for _, t, _ in parsed.get(name, [])
                     if t.is_struct and t.base in parsed)
            state[name] = "done"
            if ok:
                order.append(name)
            return ok

        for name in parsed:
            visit(name, ())
        return order

    def c_type(self, t: TypeRef) -> str:
        base = f"struct {t.base}" if t.is_struct else (t.scalar.c if t.scalar else t.base)
        return base

    def type_size(self, t: TypeRef) -> int:
        if t.is_struct:
            unit = self.structs[t.base].layout.size
        else:
            assert t.scalar is not None
            unit = t.scalar.size
        return unit * (t.count or 1)

    # -- maps ------------------------------------------------------------------------------

    def build_maps(self) -> None:
        for name, m in self.data.get("maps", {}).items():
            with contextlib.suppress(_Skip):
                self.maps[name] = self.build_map(("maps", name), name, m)

    def build_map(self, path: PathKey, name: str, m: Dict[str, Any]) -> Map:
        self.name_ok(path, name, "map")
        kind = m["type"]
        allowed = {"type", "key", "value", "max_entries"} if kind in HASH_KINDS + ARRAY_KINDS \
            else {"type", "value", "pages", "bytes"} if kind in BUFFER_KINDS \
            else {"type", "max_entries"}
        for k in m:
            if k not in allowed:
                self.err((*path, k), f"'{k}' does not apply to a {kind} map",
                         f"a {kind} map takes: {', '.join(sorted(allowed - {'type'}))}", key=True)
        key = value = None
        if kind in HASH_KINDS + ARRAY_KINDS:
            key = self.map_type(path, m, "key", "u32" if kind in ARRAY_KINDS else "u64")
            value = self.map_type(path, m, "value", "u64")
            if kind in ARRAY_KINDS and key and str(key) != "u32":
                self.err((*path, "key"), f"an {kind} map's key must be u32, not {key}")
        if kind in BUFFER_KINDS:
            if "value" not in m:
                self.err(path, f"a {kind} map needs 'value': the event struct it carries")
                raise _Skip
            value = self.map_type(path, m, "value", "")
            if value and not (value.is_struct and value.count is None):
                self.err((*path, "value"), f"a {kind} map's value must be a struct, not {value}")
                raise _Skip
            if value and kind == "perf_event_array" and self.type_size(value) > MAX_PERF_EVENT:
                self.err((*path, "value"),
                         f"struct {value.base} is {self.type_size(value)} bytes: a perf event is "
                         f"built on the 512-byte BPF stack (limit {MAX_PERF_EVENT})",
                         "use a ringbuf map, which builds events in the buffer itself")
        if (key is None and kind not in (*BUFFER_KINDS, "prog_array")) or \
                (kind in BUFFER_KINDS and value is None):
            raise _Skip
        if kind in (*ARRAY_KINDS, "prog_array") and "max_entries" not in m:
            self.err(path, f"a {kind} map needs 'max_entries'")
        pages = self.buffer_pages(path, kind, m)
        return Map(
            name=name, kind=kind, key=key, value=value,
            key_c=self.c_type(key) if key else "u32",
            value_c=self.c_type(value) if value else "u32",
            key_size=self.type_size(key) if key else 4,
            value_size=self.type_size(value) if value else 4,
            max_entries=int(m.get("max_entries", 10240)), pages=pages,
            origin=self.origin(path))

    def map_type(self, path: PathKey, m: Dict[str, Any], which: str,
                 default: str) -> Optional[TypeRef]:
        text = m.get(which, default)
        t = self.parse_type((*path, which), text)
        if t is None or (t.is_struct and t.base not in self.structs):
            raise _Skip  # reported already, here or where the struct was refused
        return t

    def buffer_pages(self, path: PathKey, kind: str, m: Dict[str, Any]) -> int:
        if kind not in BUFFER_KINDS:
            return 0
        if "pages" in m and "bytes" in m:
            self.err((*path, "bytes"), "give 'pages' or 'bytes', not both", key=True)
        if "bytes" in m:
            if m["bytes"] % PAGE:
                self.err((*path, "bytes"), f"{m['bytes']} is not a multiple of the page size "
                         f"({PAGE})")
                return DEFAULT_PAGES[kind]
            pages = m["bytes"] // PAGE
            where: PathKey = (*path, "bytes")
        else:
            pages = m.get("pages", DEFAULT_PAGES[kind])
            where = (*path, "pages")
        if pages & (pages - 1):
            self.err(where, f"buffer size must be a power of two pages, not {pages}")
        return int(pages)

    def add_messages_map(self) -> None:
        if self.via != "buffer":
            return
        pages = self.data.get("messages", {}).get("pages", 64)
        if pages & (pages - 1):
            self.err(("messages", "pages"), f"buffer size must be a power of two pages, "
                     f"not {pages}")
        self.messages_map = Map("er_messages", "ringbuf", None, None, "u32", "u32", 4, 4, 0,
                                int(pages), "messages (ebpf-run's message buffer)")

    def drop(self, channel: str, reason: str) -> Drop:
        for d in self.drops:
            if d.channel == channel and d.reason == reason:
                return d
        d = Drop(len(self.drops), channel, reason)
        self.drops.append(d)
        return d

    # -- probes, programs and tail-call wiring ---------------------------------------------

    def check_program_names(self) -> Set[str]:
        probes = self.data.get("probes", {})
        programs = self.data.get("programs", {})
        for name in probes:
            self.name_ok(("probes", name), name, "probe")
        for name in programs:
            self.name_ok(("programs", name), name, "program")
            if name in probes:
                self.err(("programs", name), f"'{name}' is both a probe and a program",
                         "probes and programs share one namespace", key=True)
        return set(programs)

    def candidates(self, name: str) -> List[Tuple[str, str, Optional[str], str, Optional[int],
                                                  str, PathKey]]:
        """(kind, target, syscall, context, filter_nr, variant, path) per attach option."""
        raw = self.data["probes"][name]["attach"]
        items = raw if isinstance(raw, list) else [raw]
        base: PathKey = ("probes", name, "attach")
        out = []
        for i, item in enumerate(items):
            path = (*base, i) if isinstance(raw, list) else base
            (kind, target), = item.items()
            if kind == "syscall":
                nr = self.sysnums.get(target)
                if nr is None:
                    if self.sysnums:
                        self.err((*path, kind), f"unknown syscall '{target}' on {self.arch}",
                                 did_you_mean(target, self.sysnums))
                    continue
                out += [
                    ("kprobe", target, target, bi.SYSCALL_KPROBE, None, "kprobe", path),
                    ("tracepoint", f"syscalls:sys_enter_{target}", None, bi.SYSCALL_TP, None,
                     "tracepoint", path),
                    ("raw_tracepoint", "sys_enter", None, bi.SYSCALL_RAW, nr, "raw", path),
                ]
            elif kind == "fentry":
                # BCC names trampoline programs after their function: kfunc__<function>.
                out.append((kind, target, None, bi.FENTRY, None, f"kfunc__{target}", path))
            else:
                ctx = {"kprobe": bi.KPROBE, "uprobe": bi.KPROBE, "kretprobe": bi.KRETPROBE,
                       "tracepoint": bi.TRACEPOINT, "raw_tracepoint": bi.RAW_TRACEPOINT}[kind]
                if kind == "tracepoint" and (target.startswith("syscalls:sys_enter_")
                                             or target == "raw_syscalls:sys_enter"):
                    ctx = bi.SYSCALL_TP
                if kind == "raw_tracepoint" and target == "sys_enter":
                    ctx = bi.SYSCALL_RAW
                out.append((kind, target, None, ctx, None, f"{kind}{i}" if
                            isinstance(raw, list) else kind, path))
        variants = [c[5] for c in out if c[0] != "fentry"]
        # Two options of the same kind need distinct function names.
        return [c if c[0] == "fentry" or variants.count(c[5]) == 1 else
                (*c[:5], f"{c[5]}{i}", c[6]) for i, c in enumerate(out)]

    def tail_maps(self, actions: Any) -> Set[str]:
        found: Set[str] = set()
        for a in actions if isinstance(actions, list) else []:
            if "tail_call" in a:
                found.add(a["tail_call"]["map"])
            if "choose" in a:
                for acts in a["choose"]["cases"].values():
                    found |= self.tail_maps(acts)
                found |= self.tail_maps(a["choose"].get("default", []))
            if "if" in a:
                found |= self.tail_maps(a["then"]) | self.tail_maps(a.get("else", []))
        return found

    def table_programs(self, mapname: str) -> List[str]:
        table = self.data.get("tail_calls", {}).get(mapname, {})
        progs = [table["default"]] if "default" in table else []
        return progs + list(table.get("entries", {}).values())

    def program_contexts(self) -> Tuple[Dict[str, Tuple[str, ...]], Dict[str, str]]:
        """Which contexts each program runs in, and which probe owns each prog_array.

        A tail-call target runs with its caller's context, so it is generated once for
        each context of the probes that reach it. A prog_array can only hold programs
        of one type, so only one probe may reach it.
        """
        programs = self.data.get("programs", {})
        contexts: Dict[str, Set[str]] = {}
        owners: Dict[str, str] = {}
        for pname, probe in self.data.get("probes", {}).items():
            ctxs = {c[3] for c in self.candidates(pname)} if "attach" in probe else set()
            todo = list(self.tail_maps(probe.get("do", [])))
            seen: Set[str] = set()
            while todo:
                mname = todo.pop()
                if mname in seen:
                    continue
                seen.add(mname)
                if mname in owners and owners[mname] != pname:
                    self.err(("probes", pname), f"prog_array '{mname}' is reached from probes "
                             f"'{owners[mname]}' and '{pname}'; a program array holds "
                             "programs of one type, so only one probe may use it", key=True)
                owners[mname] = pname
                for prog in self.table_programs(mname):
                    if prog in programs:
                        contexts.setdefault(prog, set()).update(ctxs)
                        todo += list(self.tail_maps(programs[prog].get("do", [])))
        return {k: tuple(sorted(v)) for k, v in contexts.items()}, owners

    def build_probe(self, name: str, owners: Dict[str, str]) -> Optional[Probe]:
        path: PathKey = ("probes", name)
        raw = self.data["probes"][name]
        cands = self.candidates(name)
        ctxs = tuple(c[3] for c in cands)
        actions, needs = self.actions((*path, "do"), raw["do"], ctxs)  # checked either way
        if not cands:
            return None
        out = []
        for kind, target, sysname, ctx, nr, variant, cpath in cands:
            c_name = variant if kind == "fentry" else f"er_{name}__{variant}"
            if kind == "fentry" and not self.fentry_ok(cpath, name, target, raw["do"]):
                continue
            fn = self.function(c_name, ctx, nr, needs, actions)
            if kind == "fentry":
                fn = replace(fn, kfunc=target)
            describe = comment_text(f"{kind} {target}" if not sysname else
                                    f"kprobe on the {target} syscall")
            out.append(Candidate(kind, target, sysname, fn, describe))
        tables = tuple(self.table_fill(m) for m, owner in sorted(owners.items())
                       if owner == name and m in self.maps)
        return Probe(name, self.origin(path), bool(raw.get("optional", False)), tuple(out),
                     tuple(t for t in tables if t))

    def fentry_ok(self, path: PathKey, probe: str, target: str, actions: Any) -> bool:
        owner = self.fentry_owners.setdefault(target, probe)
        if owner != probe:
            self.err((*path, "fentry"), f"fentry {target} is already used by probe '{owner}'",
                     "BCC names a trampoline program after its function, so one per function",
                     key=True)
            return False
        if self.tail_maps(actions):
            self.err((*path, "fentry"), "a probe with an fentry option cannot tail_call",
                     "tail-call targets must match the caller's program type; use kprobe or "
                     "a tracepoint for dispatchers", key=True)
            return False
        return True

    def build_program(self, name: str, ctxs: Tuple[str, ...]) -> Optional[Program]:
        path: PathKey = ("programs", name)
        if not ctxs:
            self.err(path, f"program '{name}' is never reached: no probe tail-calls "
                     "through a table that holds it", "add it to a tail_calls table that a "
                     "probe's tail_call uses", key=True)
            return None
        actions, needs = self.actions((*path, "do"), self.data["programs"][name]["do"], ctxs)
        fns = tuple(self.function(f"er_{name}__{ctx}", ctx, None, needs, actions)
                    for ctx in ctxs)
        return Program(name, self.origin(path), fns)

    def function(self, c_name: str, ctx: str, nr: Optional[int], needs: Set[str],
                 actions: Tuple[Action, ...]) -> Function:
        args = tuple(sorted(int(n[3:]) for n in needs if n.startswith("arg")))
        helpers = tuple(h for h, names in bi.HELPER_LOCALS.items() if needs & names)
        return Function(c_name, ctx, bi.SIGNATURE[ctx], bi.PROG_TYPE[ctx], nr,
                        "syscall_nr" in needs, args, actions, helpers=helpers)

    def table_fill(self, mapname: str) -> Optional[TableFill]:
        m = self.maps[mapname]
        table = self.data.get("tail_calls", {}).get(mapname)
        if table is None:
            return TableFill(m, None, ())
        entries = []
        for label, prog in table.get("entries", {}).items():
            slot = self.slot(("tail_calls", mapname, "entries", label), label)
            if slot is not None:
                entries.append((slot, prog, label))
        return TableFill(m, table.get("default"), tuple(entries))

    def slot(self, path: PathKey, label: str) -> Optional[int]:
        if label.isdigit():
            if len(label) > 10:  # no table is that large; spare int() thousands of digits
                self.err(path, f"slot {label[:16]}... is far beyond any table", key=True)
                return None
            return int(label)
        if label in self.sysnums:
            return self.sysnums[label]
        if self.sysnums:
            self.err(path, f"unknown syscall '{label}' on {self.arch}",
                     did_you_mean(label, self.sysnums), key=True)
        return None

    def check_tail_tables(self, programs: Set[str]) -> None:
        for mapname, table in self.data.get("tail_calls", {}).items():
            path: PathKey = ("tail_calls", mapname)
            m = self.maps.get(mapname)
            if m is None or m.kind != "prog_array":
                self.not_a(path, mapname, "prog_array", key=True)
                continue
            if "default" in table and table["default"] not in programs:
                self.unknown((*path, "default"), "program", table["default"], programs)
            for label, prog in table.get("entries", {}).items():
                epath = (*path, "entries", label)
                if prog not in programs:
                    self.unknown(epath, "program", prog, programs)
                slot = self.slot(epath, label) if label.isdigit() else self.sysnums.get(label)
                if slot is not None and slot >= m.max_entries:
                    self.err(epath, f"slot {slot} ({label}) is outside '{mapname}', which has "
                             f"{m.max_entries} entries", key=True)

    def unknown(self, path: PathKey, kind: str, name: str, choices: Iterable[str],
                *, key: bool = False) -> None:
        choices = list(choices)
        self.err(path, f"unknown {kind} '{name}'",
                 did_you_mean(name, choices) or known(f"{kind}s", choices), key=key)

    def not_a(self, path: PathKey, name: str, wanted: str, *, key: bool = False) -> None:
        if name not in self.maps:
            self.unknown(path, "map", name, self.maps, key=key)
        else:
            self.err(path, f"map '{name}' is a {self.maps[name].kind}, not a {wanted}", key=key)

    # -- actions ---------------------------------------------------------------------------

    def actions(self, path: PathKey, raw: List[Dict[str, Any]],
                ctxs: Tuple[str, ...]) -> Tuple[Tuple[Action, ...], Set[str]]:
        """Build a list of actions; also return the context-dependent built-ins it uses."""
        out: List[Action] = []
        needs: Set[str] = set()
        for i, a in enumerate(raw):
            apath = (*path, i)
            with contextlib.suppress(_Skip):
                out.append(self.action(apath, a, ctxs, needs))
        return tuple(out), needs

    def action(self, path: PathKey, a: Dict[str, Any], ctxs: Tuple[str, ...],
               needs: Set[str]) -> Action:
        kind = next(iter(a)) if "if" not in a else "if"
        here = (*path, kind)
        origin = f"{self.origin(path)} {kind}"
        if kind == "print":
            return self.print_action(here, a["print"], ctxs, needs, origin)
        if kind in ("count", "add"):
            return self.update(here, a[kind], kind, ctxs, needs, origin)
        if kind == "emit":
            return self.emit_action(here, a["emit"], ctxs, needs, origin)
        if kind == "tail_call":
            tc = a["tail_call"]
            m = self.maps.get(tc["map"])
            if m is None or m.kind != "prog_array":
                self.not_a((*here, "map"), tc["map"], "prog_array")
                raise _Skip
            # Any integer will do: an index past the table is a miss, which is counted.
            idx = self.scalar_value((*here, "index"), tc["index"], SCALARS["s64"], ctxs, needs)
            return TailCall(origin, m, idx, self.drop(m.name, "tail-call miss"))
        if kind == "choose":
            return self.choose(here, a["choose"], ctxs, needs, origin)
        cond = self.condition((*path, "if"), a["if"], ctxs, needs)
        then, n1 = self.actions((*path, "then"), a["then"], ctxs)
        other, n2 = self.actions((*path, "else"), a.get("else", []), ctxs)
        needs |= n1 | n2
        return If(origin, cond, then, other)

    def choose(self, path: PathKey, c: Dict[str, Any], ctxs: Tuple[str, ...], needs: Set[str],
               origin: str) -> Choose:
        value = self.scalar_value((*path, "value"), c["value"], SCALARS["s64"], ctxs, needs)
        by_syscall = c["value"] == "syscall_nr"
        cases = []
        seen: Dict[int, str] = {}
        for label, acts in c["cases"].items():
            cpath = (*path, "cases", label)
            num = self.case_label(cpath, label, by_syscall)
            if num is not None and num in seen:
                self.err(cpath, f"case '{label}' repeats case '{seen[num]}' ({num})", key=True)
            if num is not None:
                seen[num] = label
            body, n = self.actions(cpath, acts, ctxs)
            needs |= n
            lit = f"{num}" if num is not None else "0"
            cases.append(Case((lit,), label if not label.lstrip("-").isdigit() else "", body))
        if "default" in c:
            body, n = self.actions((*path, "default"), c["default"], ctxs)
            needs |= n
            cases.append(Case((), "default", body))
        return Choose(origin, value, tuple(cases))

    def case_label(self, path: PathKey, label: str, by_syscall: bool) -> Optional[int]:
        if label.lstrip("-").isdigit():
            if len(label) > 21 or not -(2**63) <= int(label) < 2**64:
                self.err(path, f"case '{label[:24]}' does not fit in 64 bits", key=True)
                return None
            return int(label)
        if not by_syscall:
            self.err(path, f"case '{label}' is not a number", "cases are syscall names only "
                     "when the value is syscall_nr", key=True)
            return None
        return self.slot(path, label)

    def condition(self, path: PathKey, text: str, ctxs: Tuple[str, ...],
                  needs: Set[str]) -> str:
        def operand(name: str, col: int) -> str:
            b = bi.BUILTINS.get(name)
            if b is None or b.name == "comm":
                raise expr.ExprError(f"unknown built-in '{name}' in condition"
                                     + (f" ({did_you_mean(name, bi.BUILTINS)})"
                                        if did_you_mean(name, bi.BUILTINS) else ""), col)
            self.check_available(path, name, ctxs)
            needs.add(name)  # contextual ones shape the prologue; some share a helper call
            return b.c

        try:
            c, _ = expr.compile_condition(text, operand)
        except expr.ExprError as e:
            self.err(path, f"bad condition: {e}")
            raise _Skip from None
        return c

    def check_available(self, path: PathKey, name: str, ctxs: Tuple[str, ...]) -> None:
        missing = sorted({c for c in ctxs if not bi.available(name, c)})
        if missing:
            self.err(path, f"'{name}' is not available in a {missing[0].replace('_', ' ')} "
                     "program", f"{name} works in: "
                     + ", ".join(sorted(bi.BUILTINS[name].contexts)).replace("_", " "))
            raise _Skip

    # -- values ----------------------------------------------------------------------------

    def scalar_value(self, path: PathKey, raw: Any, target: Any, ctxs: Tuple[str, ...],
                     needs: Set[str]) -> str:
        """The C expression for an integer value going into `target` (a Scalar)."""
        if isinstance(raw, bool):
            self.err(path, f"expected a number or a built-in, got {str(raw).lower()}")
            raise _Skip
        if isinstance(raw, int):
            lo = -(2 ** (target.bits - 1)) if target.signed else 0
            hi = 2 ** (target.bits - (1 if target.signed else 0)) - 1
            if not lo <= raw <= hi:
                self.err(path, f"{raw} does not fit in {target.name} ({lo}..{hi})")
                raise _Skip
            return f"{raw}LL" if raw < 2**63 else f"{raw}ULL"
        name = raw if isinstance(raw, str) else None
        b = bi.BUILTINS.get(name) if name else None
        if b is None or b.name == "comm":
            what = f"'{raw['literal']}'" if isinstance(raw, dict) else repr(raw)
            hint = did_you_mean(name, bi.BUILTINS) if name else None
            self.err(path, f"expected a number or an integer built-in for a {target.name}, "
                     f"got {what}", hint or known("built-ins", (k for k in bi.BUILTINS
                                                              if k != "comm")))
            raise _Skip
        self.check_available(path, b.name, ctxs)
        needs.add(b.name)  # contextual ones shape the prologue; some share a helper call
        src = SCALARS[b.type]
        if src.bits > target.bits:
            self.err(path, f"'{b.name}' is a {src.name} and does not fit in a {target.name}",
                     f"use a {src.name} (or wider) field")
            raise _Skip
        return f"({target.c})({b.c})"

    def assign(self, path: PathKey, member: str, t: TypeRef, raw: Any, ctxs: Tuple[str, ...],
               needs: Set[str]) -> Assign:
        """How to fill one field of type `t` from a spec value."""
        is_builtin = isinstance(raw, str) and raw in bi.BUILTINS
        if t.is_struct or (t.count is not None and not t.is_string):
            self.err(path, f"field '{member}' is {'a struct' if t.is_struct else 'an array'} "
                     f"({t}) and cannot be set from a value", "leave it out: it stays zero")
            raise _Skip
        if t.is_string:
            assert t.count is not None
            if raw == "comm":
                return Assign(member, "comm", "", min(t.count, COMM_LEN))
            if is_builtin or isinstance(raw, int):
                self.err(path, f"field '{member}' is {t}: it takes text or comm, not {raw!r}")
                raise _Skip
            text = raw["literal"] if isinstance(raw, dict) else raw
            data = text.encode("utf-8")
            if b"\0" in data:
                self.err(path, "a string literal cannot contain a NUL character")
                raise _Skip
            if len(data) + 1 > t.count:
                self.err(path, f"literal of {len(data)} bytes does not fit in {t} "
                         f"(room for {t.count - 1} plus the NUL)")
                raise _Skip
            return Assign(member, "string", c_string(text), len(data) + 1)
        assert t.scalar is not None
        if isinstance(raw, dict) or (isinstance(raw, str) and not is_builtin):
            hint = did_you_mean(raw, bi.BUILTINS) if isinstance(raw, str) else None
            shown = repr(raw["literal"] if isinstance(raw, dict) else raw)
            self.err(path, f"field '{member}' is {t}: a string {shown} does not fit",
                     hint or "give a number or an integer built-in")
            raise _Skip
        return Assign(member, "expr", self.scalar_value(path, raw, t.scalar, ctxs, needs), 0)

    def assigns(self, path: PathKey, struct: Struct, values: Dict[str, Any],
                ctxs: Tuple[str, ...], needs: Set[str]) -> Tuple[Assign, ...]:
        fields = {m.name: m for m in struct.layout.fields}
        out = []
        for fname, raw in values.items():
            fpath = (*path, fname)
            if fname not in fields:
                self.err(fpath, f"struct '{struct.name}' has no field '{fname}'",
                         did_you_mean(fname, fields) or known("fields", fields), key=True)
                continue
            with contextlib.suppress(_Skip):
                out.append(self.assign(fpath, fname, fields[fname].type, raw, ctxs, needs))
        return tuple(out)

    def emit_action(self, path: PathKey, e: Dict[str, Any], ctxs: Tuple[str, ...],
                    needs: Set[str], origin: str) -> Emit:
        m = self.maps.get(e["to"])
        if m is None or m.kind not in BUFFER_KINDS:
            self.not_a((*path, "to"), e["to"], "perf_event_array or ringbuf")
            raise _Skip
        assert m.value is not None
        struct = self.structs.get(m.value.base)
        if struct is None:
            raise _Skip
        assigns = self.assigns((*path, "set"), struct, e.get("set", {}), ctxs, needs)
        return self.make_emit(origin, m, struct, assigns)

    def make_emit(self, origin: str, m: Map, struct: Struct, assigns: Tuple[Assign, ...]) -> Emit:
        # Counted in the kernel for perf buffers too: the kernel reports a perf loss only
        # when a later sample fits, so after a final burst its own count arrives late or never.
        return Emit(origin, m, struct, assigns, self.drop(m.name, "buffer full"), "0",
                    zero_fill=not _fills_every_byte(struct, assigns))

    def update(self, path: PathKey, u: Dict[str, Any], kind: str, ctxs: Tuple[str, ...],
               needs: Set[str], origin: str) -> Update:
        m = self.maps.get(u["map"])
        if m is None or m.kind not in HASH_KINDS + ARRAY_KINDS:
            self.not_a((*path, "map"), u["map"], "hash or array map")
            raise _Skip
        assert m.key is not None and m.value is not None
        vt = m.value.scalar
        if m.value.count is not None or vt is None or vt.size < 4 or m.value.is_string:
            self.err((*path, "map"), f"{kind} needs a map whose value is u32/u64/s32/s64; "
                     f"'{m.name}' holds {m.value}")
            raise _Skip
        amount = "1" if kind == "count" else self.scalar_value(
            (*path, "value"), u["value"], vt, ctxs, needs)
        raw_key = u["key"]
        key_assigns: Tuple[Assign, ...] = ()
        key_expr = None
        if m.key.is_struct:
            if not isinstance(raw_key, dict) or "literal" in raw_key:
                self.err((*path, "key"), f"map '{m.name}' has a struct key ({m.key.base}): "
                         "give its fields as a mapping")
                raise _Skip
            key_assigns = self.assigns((*path, "key"), self.structs[m.key.base], raw_key,
                                       ctxs, needs)
        elif isinstance(raw_key, dict) and "literal" not in raw_key:
            self.err((*path, "key"), f"map '{m.name}' has a {m.key} key, not a struct")
            raise _Skip
        else:
            a = self.assign((*path, "key"), "key", m.key, raw_key, ctxs, needs)
            key_assigns = (a,) if a.how != "expr" else ()
            key_expr = a.c_value if a.how == "expr" else None
        reason = "index out of range" if m.kind in ARRAY_KINDS else "map full"
        return Update(origin, m, key_assigns, key_expr, amount, self.drop(m.name, reason))

    def print_action(self, path: PathKey, text: str, ctxs: Tuple[str, ...], needs: Set[str],
                     origin: str) -> Print:
        names = self.format_fields(path, text, set(bi.BUILTINS), "built-in")
        self.check_format(path, text, *({n: sample_value(parse_type(bi.BUILTINS[n].type), {}, hi)
                                         for n in names} for hi in (False, True)))
        for n in names:
            self.check_available(path, n, ctxs)
            needs.add(n)
        msg_id = len(self.messages) + 1
        if self.via == "trace_pipe":
            return self.printk(path, text, names, msg_id, origin)
        fields: List[Tuple[str, TypeRef, str]] = [("er_id", TypeRef("u32"), "message id")]
        fields += [(n, parse_type(bi.BUILTINS[n].type), f"built-in {n}") for n in names]
        struct = Struct(f"er_msg{msg_id}", lay_out(tuple(fields), {}), origin, internal=True)
        self.msg_structs.append(struct)
        self.messages.append(MessageDef(msg_id, struct, text, origin))
        assigns = [Assign("er_id", "expr", f"{msg_id}", 0)]
        for n in names:
            t = parse_type(bi.BUILTINS[n].type)
            assigns.append(self.assign(path, n, t, n, ctxs, needs))
        assert self.messages_map is not None
        return Print(origin, msg_id, self.make_emit(origin, self.messages_map, struct,
                                                    tuple(assigns)), "", ())

    def printk(self, path: PathKey, text: str, names: List[str], msg_id: int,
               origin: str) -> Print:
        # bpf_trace_printk takes three arguments; one carries this run's tag.
        if len(names) > 2:
            self.err(path, f"with messages via trace_pipe a print takes at most 2 values, "
                     f"this one has {len(names)}", "use the default messages: {via: buffer}")
            raise _Skip
        parts = []
        for literal, field, spec, conv in string.Formatter().parse(text):
            parts.append(literal.replace("%", "%%"))
            if field is not None:
                if spec or conv:
                    self.err(path, "format specs are not available with messages via "
                             "trace_pipe")
                    raise _Skip
                if field == "comm":
                    self.err(path, "comm cannot be printed via trace_pipe",
                             "use the default messages: {via: buffer}")
                    raise _Skip
                sc = SCALARS[bi.BUILTINS[field].type]
                parts.append({1: "%d", 2: "%d", 4: "%d", 8: "%lld"}[sc.size] if sc.signed
                             else {1: "%u", 2: "%u", 4: "%u", 8: "%llu"}[sc.size])
        self.messages.append(MessageDef(msg_id, None, text, origin))
        fmt = "er-%u: " + "".join(parts)
        used = [f for _, f, _, _ in string.Formatter().parse(text) if f is not None]
        args = tuple(f"({SCALARS[bi.BUILTINS[n].type].c})({bi.BUILTINS[n].c})" for n in used)
        return Print(origin, msg_id, None, c_string(fmt), args)

    def format_fields(self, path: PathKey, text: str, allowed: Set[str], what: str) -> List[str]:
        """The distinct placeholder names of a format, each checked against `allowed`."""
        names: List[str] = []
        try:
            parsed = list(string.Formatter().parse(text))
        except ValueError as e:
            self.err(path, f"bad format: {e}", "write {{ and }} for literal braces")
            raise _Skip from None
        for _, field, spec, _ in parsed:
            if field is None:
                continue
            base = field.split(".")[0].split("[")[0]
            if base == "" or base.isdigit():
                self.err(path, "placeholders must be named, e.g. {pid}")
                raise _Skip
            if base not in allowed:
                self.err(path, f"'{{{field}}}' names no {what}",
                         did_you_mean(base, allowed) or known(f"{what}s", allowed))
                raise _Skip
            if spec and "{" in spec:
                self.err(path, "nested placeholders in format specs are not supported")
                raise _Skip
            if base not in names:
                names.append(base)
        return names

    # -- output ----------------------------------------------------------------------------

    def build_event_outputs(self) -> Tuple[EventOutput, ...]:
        out: Dict[str, EventOutput] = {}
        for i, entry in enumerate(self.data.get("output", [])):
            if "events" not in entry:
                continue
            path: PathKey = ("output", i)
            m = self.maps.get(entry["events"])
            if m is None or m.kind not in BUFFER_KINDS:
                self.not_a((*path, "events"), entry["events"], "perf_event_array or ringbuf")
                continue
            assert m.value is not None
            struct = self.structs.get(m.value.base)
            if struct is None:
                continue
            if m.name in out:
                self.err(path, f"events of '{m.name}' are already printed by an earlier entry")
            fmt = entry.get("format") or default_format(struct)
            try:
                names = {f.name for f in struct.layout.fields}
                self.format_fields((*path, "format"), fmt, names, f"field of {struct.name}")
                self.check_format((*path, "format"), fmt, sample_record(struct, self.structs),
                                  sample_record(struct, self.structs, True))
            except _Skip:
                continue
            out[m.name] = EventOutput(m, struct, fmt, self.origin(path))
        # Every buffer gets printed; one without an output entry shows all its fields.
        for m in self.maps.values():
            if m.kind in BUFFER_KINDS and m.name not in out and m.value is not None:
                struct = self.structs.get(m.value.base)
                if struct:
                    out[m.name] = EventOutput(m, struct, default_format(struct), m.origin)
        return tuple(out.values())

    def check_format(self, path: PathKey, fmt: str, *samples: Dict[str, Any]) -> None:
        """Try the format on the lowest and the highest values its fields can take."""
        for sample in samples:
            try:
                fmt.format_map(sample)
            except (ValueError, KeyError, IndexError, TypeError, AttributeError,
                    OverflowError) as e:
                self.err(path, f"format cannot be applied: {e}")
                raise _Skip from None

    def build_map_outputs(self) -> Tuple[MapOutput, ...]:
        out = []
        for i, entry in enumerate(self.data.get("output", [])):
            if "map" not in entry:
                continue
            path: PathKey = ("output", i)
            m = self.maps.get(entry["map"])
            if m is None or m.kind not in HASH_KINDS + ARRAY_KINDS:
                self.not_a((*path, "map"), entry["map"], "hash or array map")
                continue
            assert m.key is not None and m.value is not None
            fmt = entry.get("format", "{key}: {value}")
            samples = [{"key": sample_value(m.key, self.structs, hi),
                        "value": sample_value(m.value, self.structs, hi)} for hi in (False, True)]
            try:
                self.format_fields((*path, "format"), fmt, {"key", "value"}, "of key/value")
                self.check_format((*path, "format"), fmt, *samples)
            except _Skip:
                continue
            if "every" not in entry and entry.get("at_exit") is False:
                self.err(path, "this map is never printed: give 'every' or leave 'at_exit' on")
            out.append(MapOutput(m, fmt, entry.get("separator", "\n"), entry.get("every"),
                                 entry.get("at_exit", True), self.origin(path)))
        return tuple(out)


def default_format(struct: Struct) -> str:
    return " ".join(f"{f.name}={{{f.name}}}" for f in struct.layout.fields)


def sample_value(t: TypeRef, structs: Dict[str, Struct], high: bool = False) -> Any:
    """A value shaped like what the decoder produces for `t`, to try formats on: the
    type's lowest value, or with `high` its highest (`{ktime:c}` passes with 0 only)."""
    if t.is_string:
        return "x" * ((t.count or 1) - 1) if high else ""
    if t.is_struct:
        one: Any = sample_record(structs[t.base], structs, high)
    else:
        assert t.scalar is not None
        bits = t.scalar.bits - (1 if t.scalar.signed else 0)
        one = (2**bits - 1) if high else (-(2**bits) if t.scalar.signed else 0)
    return [one] * t.count if t.count is not None else one


def sample_record(struct: Struct, structs: Dict[str, Struct],
                  high: bool = False) -> Dict[str, Any]:
    return {f.name: sample_value(f.type, structs, high) for f in struct.layout.fields}


def _fills_every_byte(struct: Struct, assigns: Tuple[Assign, ...]) -> bool:
    """Whether the assignments write the whole record, so zeroing it first is wasted work.

    Every member must be assigned and there must be no padding; a string literal writes only
    its bytes and the NUL, and comm writes exactly its length, so those must fill the field.
    """
    sizes = {m.name: m.size for m in struct.members}
    if any(m.padding for m in struct.members) or {a.member for a in assigns} != set(sizes):
        return False
    return all(a.how == "expr" or a.size == sizes[a.member] for a in assigns)
