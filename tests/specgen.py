"""A seeded generator of specs for the systemic test: every construct of the language, extreme
sizes, and names drawn from the words C, BCC, the kernel headers, Python and ctypes already
use. Whatever `check` accepts must compile and load (tests/kernel/test_generated_specs.py);
whatever it refuses must be refused with located messages (tests/unit/test_generated_specs.py).

Since issue 24 it also compares strings (comm, char[16] record fields, string arguments)
with literals of every length around 16 bytes and up to the stack, and looks up then
deletes large keys built from string reads: with the code before that issue, seed 16's
40 accepted specs include one that made LLVM exit (a lookup and a delete of a 272-byte
key), and others with a startswith("") that did not compile.

Deterministic for a seed: a failure names its seed and spec index, and `generate(seed, i)`
gives the same text again.
"""

from __future__ import annotations

import keyword
import random
from typing import Any, Dict, List

import yaml

from runner.check.reserved import c_reserved

# Names a spec might give that mean something to someone: C, BCC and kernel macros and
# declarations (a sample of runner/data/reserved-c.txt is added per run), Python and ctypes.
HOSTILE = [
    "linux", "unix", "noinline", "__user", "current", "min", "max", "abs", "log2", "memset",
    "memcpy", "strlen", "printf", "bpf_map", "bpf_trace_printk", "lock_xadd", "u64", "ctx",
    "NULL", "true", "size_t", "pt_regs", "task_struct", "sk_buff", "int", "struct", "asm",
    "typeof", "inline", "restrict", "_Bool", "_fields_", "_anonymous_", "_pack_", "_align_",
    "_objects", "_b_base_", "__class__", "__dict__", "__init__", "__slots__", "from_buffer",
    "from_buffer_copy", "in_dll", "self", "cls", "ctypes", "er_ctypes", "ER_LAYOUT",
    "er_check_layout", "er_x", "_pad0", "print", "type", "id", "list", "dict", "match",
    "case", "_", "None", "True", "key", "value", "count", "pid", "comm", "data", "len",
    "buf", "args", "ret", "event", "events", "table", "map", "lookup", "insert", "call",
    "perf_submit", "ringbuf_reserve", "PAGE_SIZE", "BPF_F_INDEX_MASK", "HZ",
    *keyword.kwlist,
]
PLAIN = ["a", "b", "n", "total", "hits", "who", "where", "note", "stamp", "first", "last"]

SCALARS = ["u8", "u16", "u32", "u64", "s8", "s16", "s32", "s64"]
CHAR_SIZES = [1, 2, 16, 17, 100, 248, 256, 400, 448, 449, 1024, 1025, 3001, 65000]
# Literal lengths for string comparisons: around comm's 15 bytes and the verifier's old
# E2BIG from about 16 (issue 24), and long ones that fill the stack.
LITERAL_SIZES = [0, 1, 14, 15, 16, 17, 22, 40, 64, 100, 220, 300, 440]
LITERAL_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789/._-"
# Attach options with string arguments (in every form the option takes), and those strings.
STRINGS = {
    "execve": ({"syscall": "execve"}, ["args.filename"]),
    "openat": ({"tracepoint": "syscalls:sys_enter_openat"}, ["args.filename"]),
    "switch": ({"tracepoint": "sched:sched_switch"}, ["args.prev_comm", "args.next_comm"]),
}
ATTACH = [
    {"syscall": "getppid"}, {"syscall": "read"}, {"syscall": "fstat"}, {"syscall": "mseal"},
    {"syscall": "execve"}, {"tracepoint": "sched:sched_process_exec"},
    {"tracepoint": "syscalls:sys_enter_openat"}, {"raw_tracepoint": "sys_enter"},
    {"raw_tracepoint": "sched_switch"}, {"kprobe": "do_nanosleep"},
    {"kretprobe": "do_nanosleep"}, {"uprobe": "/bin/true:main"}, {"fentry": "do_nanosleep"},
]
ANYWHERE = ["pid", "tgid", "tid", "uid", "gid", "ktime", "cpu"]
BUILTINS = [*ANYWHERE, "syscall_nr", "retval", *(f"arg{i}" for i in range(6))]
WIDE = {"ktime", "syscall_nr", "retval", *(f"arg{i}" for i in range(6))}  # 64-bit ones
COMPARE = ["==", "!=", "<", "<=", ">", ">="]


class _Gen:
    def __init__(self, seed: int):
        self.r = random.Random(seed)
        self.used: set = set()
        self.strings = ["comm"]  # string values the current probe can read
        reserved = sorted(c_reserved())
        self.hostile = HOSTILE + self.r.sample(reserved, 40)

    def name(self, hostile: float = 0.08) -> str:
        for _ in range(50):
            n = (self.r.choice(self.hostile) if self.r.random() < hostile
                 else f"{self.r.choice(PLAIN)}{self.r.randrange(100)}")
            if n not in self.used:
                self.used.add(n)
                return n
        return f"x{len(self.used)}"

    def type(self, structs: List[str]) -> str:
        k = self.r.random()
        if structs and k < 0.25:
            s = self.r.choice(structs)
            return s if self.r.random() < 0.8 else f"{s}[{self.r.choice([1, 2, 3])}]"
        if k < 0.55:
            return f"char[{self.r.choice(CHAR_SIZES)}]"
        if k < 0.65:
            return f"{self.r.choice(SCALARS)}[{self.r.choice([1, 2, 8, 100])}]"
        return self.r.choice(SCALARS)

    def builtin(self) -> str:
        """Mostly built-ins that work in every context; now and then one that may not."""
        return self.r.choice(BUILTINS if self.r.random() < 0.1 else ANYWHERE)

    def value(self, t: str) -> Any:
        """A value for a field or key of type `t`: mostly one that fits."""
        if t.startswith("char["):
            n = int(t[5:-1])
            if self.r.random() < 0.3:
                return "comm"
            return "t" * min(n - 1, self.r.choice([0, 1, 15, 399, 1024, 3000, 4095]))
        if t not in SCALARS:
            return 0
        bits, signed = int(t[1:]), t[0] == "s"
        k = self.r.random()
        if k < 0.4:
            b = self.builtin()
            return b if bits == 64 or (bits == 32 and b not in WIDE) else 1
        lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2 ** bits - 1)
        return self.r.choice([lo, hi, 0, 1, max(lo, -1)])

    def condition(self) -> str:
        parts = []
        for _ in range(self.r.randint(1, 3)):
            if self.r.random() < 0.5:
                parts.append(self.string_compare())
                continue
            left = self.builtin()
            parts.append(f"{left} {self.r.choice(COMPARE)} "
                         f"{self.r.choice([0, 1, 7, 2**32 - 1, 2**63 - 1, 2**64 - 1])}")
        return f" {self.r.choice(['&&', '||'])} ".join(parts)

    def string_compare(self) -> str:
        source = self.strings[-1] if self.r.random() < 0.7 else self.r.choice(self.strings)
        sizes = LITERAL_SIZES
        if source.endswith("comm") and self.r.random() < 0.9:  # char[16]s
            sizes = [n for n in sizes if n < 16]  # now and then one it can never match
        literal = "".join(self.r.choice(LITERAL_CHARS) for _ in range(self.r.choice(sizes)))
        if self.r.random() < 0.4:
            return f'startswith({source}, "{literal}")'
        return f'{source} {self.r.choice(["==", "!="])} "{literal}"'

    def string_value(self, n: int) -> Any:
        """A value for a char[n] key: mostly a string the probe reads (so keys are built
        on the stack from a read), else a literal that fits."""
        if self.r.random() < 0.7:
            return self.r.choice(self.strings)
        return "k" * min(n - 1, self.r.choice([0, 1, 15, 200]))

    def spec(self) -> Dict[str, Any]:
        structs: Dict[str, List[Dict[str, str]]] = {}
        for _ in range(self.r.randint(0, 3)):
            fields = [{self.name(): self.type(list(structs))}
                      for _ in range(self.r.randint(1, 4))]
            structs[self.name()] = fields
        names = list(structs)
        maps: Dict[str, Dict[str, Any]] = {}
        for _ in range(self.r.randint(0, 4)):
            kind = self.r.choice(["hash", "lru_hash", "array", "percpu_array", "percpu_hash",
                                  "ringbuf", "perf_event_array"])
            m: Dict[str, Any] = {"type": kind}
            if kind in ("ringbuf", "perf_event_array"):
                if not names:
                    continue
                m["value"] = self.r.choice(names)
            else:
                m["value"] = self.r.choice(["u64", "u32", "s64", self.type(names)])
                # The extremes are few: allocating them is most of the kernel tier's time.
                m["max_entries"] = self.r.choices([1, 8, 10240, 1 << 20, 1 << 24],
                                                  [4, 4, 4, 1, 1])[0]
                if "array" not in kind:
                    m["key"] = self.r.choice(["u64", "u32", self.type(names)])
            maps[self.name()] = m
        if self.r.random() < 0.3:
            maps[self.name()] = {"type": "prog_array", "max_entries": self.r.choice([1, 512])}
        probes = {self.name(0.05): self.probe(structs, maps)
                  for _ in range(self.r.randint(1, 3))}
        out: Dict[str, Any] = {"name": "generated", "structs": structs, "maps": maps,
                               "probes": probes}
        self.tail_calls(out)
        if self.r.random() < 0.3:
            out["messages"] = {"via": "trace_pipe"}
        return {k: v for k, v in out.items() if v}

    def probe(self, structs: Dict[str, Any], maps: Dict[str, Any]) -> Dict[str, Any]:
        self.strings = ["comm"]
        attach: Any = self.r.choice(ATTACH)
        if self.r.random() < 0.4:
            attach, more = self.r.choice(list(STRINGS.values()))
            self.strings = ["comm", *more]
        if self.r.random() < 0.2:
            attach = [attach, self.r.choice(ATTACH)]
            self.strings = ["comm"]
        return {"attach": attach, "do": self.actions(structs, maps, 2)}

    def actions(self, structs: Dict[str, Any], maps: Dict[str, Any],
                depth: int) -> List[Dict[str, Any]]:
        out: List[Dict[str, Any]] = []
        for _ in range(self.r.randint(0, 3)):
            k = self.r.random()
            tables = [n for n, m in maps.items() if m["type"] not in
                      ("ringbuf", "perf_event_array", "prog_array")
                      and m["value"] in ("u32", "u64", "s32", "s64")]
            buffers = [n for n, m in maps.items() if m["type"] in
                       ("ringbuf", "perf_event_array")]
            if k < 0.25 and tables:
                name = self.r.choice(tables)
                key = self.key(structs, maps[name])
                if self.r.random() < 0.5:
                    out.append({"count": {"map": name, "key": key}})
                else:
                    out.append({"add": {"map": name, "key": key,
                                        "value": self.value(maps[name]["value"])}})
            elif k < 0.45 and buffers:
                name = self.r.choice(buffers)
                fields = structs.get(maps[name]["value"], [])
                sets = {f: self.value(t) for d in fields for f, t in d.items()
                        if self.r.random() < 0.7 and "[" not in t.replace("char[", "")
                        and (t in SCALARS or t.startswith("char["))}
                out.append({"emit": {"to": name, "set": sets}})
            elif k < 0.55 and self.hashes(maps):
                out.extend(self.lookup_delete(structs, maps))
            elif k < 0.65:
                words = self.r.sample([*ANYWHERE, "comm"], self.r.randint(0, 4))
                out.append({"print": " ".join(f"{w}={{{w}}}" for w in words) or "hi"})
            elif k < 0.8 and depth:
                a: Dict[str, Any] = {"if": self.condition(),
                                     "then": self.actions(structs, maps, depth - 1)}
                if self.r.random() < 0.5:
                    a["else"] = self.actions(structs, maps, depth - 1)
                out.append(a)
            elif k < 0.9 and depth:
                out.append({"choose": {
                    "value": self.builtin(),
                    "cases": {self.r.choice(["0", "7", "4294967295"]):
                              self.actions(structs, maps, depth - 1)},
                    "default": self.actions(structs, maps, depth - 1)}})
        return out

    def hashes(self, maps: Dict[str, Any]) -> List[str]:
        return [n for n, m in maps.items() if m["type"] in ("hash", "lru_hash")]

    def lookup_delete(self, structs: Dict[str, Any], maps: Dict[str, Any]) -> List[Any]:
        """A lookup, then a delete of the same key (issue 24: two large keys, built from a
        string read, overflowed the stack); a struct looked up stays on the stack."""
        name = self.r.choice(self.hashes(maps))
        m = maps[name]
        key = self.key(structs, m)
        lookup: Dict[str, Any] = {"map": name, "key": key}
        if m["value"] in SCALARS:
            found: Dict[str, Any] = {"lookup": lookup, "default": 0}
        else:
            found = {"lookup": lookup}  # no entry: the probe stops here
        pair = [{"let": {self.name(0): found}}, {"delete": {"map": name, "key": key}}]
        if self.r.random() < 0.5:  # under a string comparison, as a filter would be
            return [{"if": self.string_compare(), "then": pair}]
        return pair

    def key(self, structs: Dict[str, Any], m: Dict[str, Any]) -> Any:
        key = m.get("key", "u32")
        if key in structs:
            return {f: self.string_value(int(t[5:-1])) if t.startswith("char[") else
                    self.value(t) for d in structs[key] for f, t in d.items()
                    if t in SCALARS or t.startswith("char[")}
        if key.startswith("char["):
            return self.string_value(int(key[5:-1]))
        return self.value(key)

    def tail_calls(self, out: Dict[str, Any]) -> None:
        jumps = [n for n, m in out["maps"].items() if m["type"] == "prog_array"]
        if not jumps:
            return
        target = self.name(0.05)
        self.strings = ["comm"]  # a program's context is its callers': no args assumed
        out["programs"] = {target: {"do": self.actions(out["structs"], out["maps"], 1)}}
        out["tail_calls"] = {jumps[0]: {"default": target}}
        first = next(iter(out["probes"].values()))
        first["do"].append({"tail_call": {"map": jumps[0], "index": 0}})


def generate(seed: int, index: int) -> str:
    """Spec number `index` of the run seeded `seed`, as YAML text."""
    spec = _Gen(seed * 100003 + index).spec()
    return yaml.safe_dump(spec, sort_keys=False, width=1 << 20)
