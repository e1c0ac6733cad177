"""The model: what the checker (runner/check) makes of a valid spec, and all that the templates
and the runtime read. Frozen dataclasses; nothing here computes.

Every element keeps `origin`, a short text naming the spec element it came
from (e.g. "probes.hello.do[0] (line 9)"), which the generated code prints in
comments so a reader, or a compile error, can be traced back to the spec.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple, Union

from runner.model.cgroups import CgroupRef
from runner.model.expr import ArraySource, Condition, ParamStr, StrSource, Value
from runner.model.params import Param
from runner.model.stacks import StackMap
from runner.model.tests import TestCase
from runner.model.types import Layout, Member, TypeRef


@dataclass(frozen=True)
class Struct:
    name: str  # C name without "struct"
    layout: Layout
    origin: str
    internal: bool = False  # made by ebpf-run (message records), not declared by the spec

    @property
    def members(self) -> Tuple[Member, ...]:
        return self.layout.members


@dataclass(frozen=True)
class Map:
    name: str
    kind: str  # schema map type
    key: Optional[TypeRef]
    value: Optional[TypeRef]
    max_entries: int
    pages: int  # perf: pages per CPU; ringbuf: total pages
    origin: str


@dataclass(frozen=True)
class Drop:
    """One in-kernel counter: a slot of the per-CPU array er_drops. Most count records lost;
    a tail call that falls through is no loss (the probe goes on with its next action), so
    its counter says so and is reported as what happened, not as lost."""

    index: int
    channel: str  # the map (or "messages") the count belongs to
    reason: str  # "buffer full", "map full", "tail calls that fell through ..."
    is_loss: bool = True


# Actions. Values and conditions are runner/model/expr.py trees; codegen spells them in C.


@dataclass(frozen=True)
class StackCapture:
    """bpf_get_stackid into a stack field: kernel or user frames, into `map`; a failure
    other than "no stack here" (a user stack in a kernel thread) is counted in `drop`."""

    map: StackMap
    user: bool
    drop: Drop


@dataclass(frozen=True)
class StackPids:
    """The ring the pids of processes with a ustack go to, each once: `seen` pids are
    remembered in the kernel (a hash set) so as not to send them again."""

    ring: Map
    seen: int


@dataclass(frozen=True)
class Assign:
    """One field of a record being filled."""

    member: str
    how: str  # "expr" | "comm" | "string" | "read" | "copy" | "stack" | "stack_pid"
    # "expr": the value; "string": the text; "comm": None; "read": a StrSource or ParamStr;
    # "copy": an ArraySource (an integer array copied whole into an array field);
    # "stack": a StackCapture; "stack_pid": the pid (a Value) a ustack's addresses are in
    value: Union[Value, str, StrSource, ParamStr, ArraySource, StackCapture, None]
    size: int  # bytes to copy for "string" (literal plus NUL), "comm" and "copy"; "read": the field


@dataclass(frozen=True)
class Emit:
    origin: str
    map: Map
    struct: Struct
    assigns: Tuple[Assign, ...]
    drop: Drop  # reserve (ring) or output (perf) failures: buffer full
    zero_fill: bool = True  # False when the assignments write every byte of the record


@dataclass(frozen=True)
class Print:
    """A message. Via the buffer it is an Emit of an internal struct; via trace_pipe, printk."""

    origin: str
    emit: Optional[Emit]
    printk_format: str  # trace_pipe mode: the printf format text (codegen makes it a literal)
    printk_args: Tuple[Value, ...]


@dataclass(frozen=True)
class Update:
    """count/add: atomically add `amount` to map[key]."""

    origin: str
    map: Map
    key_assigns: Tuple[Assign, ...]  # for a struct key
    key_value: Optional[Value]  # for a scalar key
    amount: Value
    drop: Drop


@dataclass(frozen=True)
class TailCall:
    origin: str
    map: Map
    index: Value
    drop: Drop


@dataclass(frozen=True)
class AggKey:
    """One part of an aggregation's key: a field of its key struct."""

    name: str
    type: TypeRef
    decode: Optional[str]  # a runner/kinds/decoders name, applied when dumped


@dataclass(frozen=True)
class MetricDecl:
    """How an aggregation is exported on /metrics (runner/output/prometheus.py)."""

    name: str
    kind: str  # counter | gauge | histogram
    help: str
    max_label_sets: int


@dataclass(frozen=True)
class Aggregation:
    """An `aggregations:` entry: a per-CPU map the kernel updates and ebpf-run combines
    (runner/model/aggregates.py). Scalar kinds keep a struct er_agg_slot per key; hist
    and lhist a u64 count per (key, bucket)."""

    name: str
    kind: str  # count sum min max avg stats hist lhist
    map: Map  # a percpu_hash: key struct (or u32 0 with no key), value slot or count
    keys: Tuple[AggKey, ...]
    unit: Optional[str]  # ns us ms s bytes: what the recorded values are in
    linear: Optional[Tuple[int, int, int]]  # lhist: (min, max, step)
    every: Optional[float]
    at_exit: bool
    clear: bool  # each dump shows what was added since the last one
    top: Optional[int]
    metric: Optional[MetricDecl]
    origin: str
    # Histograms exported to Prometheus also keep their values' sum (its _sum and _count),
    # per key, in the entry whose bucket is SUM_BUCKET (runner/check/aggregations.py).
    keeps_sum: bool = False
    # With a ustack key field, the key struct also holds the pid (STACK_PID, after
    # the spec's fields): user addresses mean something only in their process. It is part
    # of the key, as in bpftrace, but not shown.
    stack_pid: bool = False

    @property
    def has_stacks(self) -> bool:
        return any(k.type.is_stack for k in self.keys)


@dataclass(frozen=True)
class Elapsed:
    """ktime minus the timestamp a hash map holds for key; the entry is deleted."""

    map: Map
    key: MapKey  # built as for a delete: a scalar, char[N] or struct key


@dataclass(frozen=True)
class Aggregate:
    """aggregate: record one value (or one occurrence) in an aggregation."""

    origin: str
    agg: Aggregation
    key_assigns: Tuple[Assign, ...]  # for a key struct
    value: Optional[Value]  # None: count, or `elapsed`
    elapsed: Optional[Elapsed]
    divide: int  # elapsed ns -> the aggregation's unit
    drop: Drop


@dataclass(frozen=True)
class MapKey:
    """A key built for one map access: a struct key's field assignments, or a scalar's value."""

    assigns: Tuple[Assign, ...]
    value: Optional[Value]


@dataclass(frozen=True)
class Let:
    """A named value (C local er_v_<name>) for the actions after it: computed, or looked up
    in a map. A lookup without `default` ends the probe when the entry is absent."""

    origin: str
    name: str
    type: TypeRef  # a scalar, or the map's struct value
    value: Optional[Value]  # computed; None for a lookup
    map: Optional[Map] = None
    key: Optional[MapKey] = None
    default: Optional[Value] = None


@dataclass(frozen=True)
class Store:
    """map[key] = value, creating the entry (BPF_ANY)."""

    origin: str
    map: Map
    key: MapKey
    value_assigns: Tuple[Assign, ...]  # for a struct value
    value: Optional[Value]  # for a scalar value
    drop: Drop


@dataclass(frozen=True)
class Delete:
    origin: str
    map: Map
    key: MapKey


Action = Union[Emit, Print, Update, TailCall, "Choose", "If", Let, Store, Delete, Aggregate]


@dataclass(frozen=True)
class Case:
    labels: Tuple[int, ...]  # empty tuple means default
    comment: str  # syscall names, for readers
    actions: Tuple[Action, ...]


@dataclass(frozen=True)
class Choose:
    origin: str
    value: Value
    cases: Tuple[Case, ...]


@dataclass(frozen=True)
class If:
    origin: str
    condition: Condition
    then: Tuple[Action, ...]
    otherwise: Tuple[Action, ...]


@dataclass(frozen=True)
class Function:
    """One generated BPF function: a probe or program in one context."""

    c_name: str  # er_<name>__<variant>
    context: str  # a runner/kinds/attach.py CONTEXTS name
    prog_type: str  # BCC program type name
    filter_nr: Optional[int]  # raw sys_enter fallback: only this syscall
    needs_nr: bool
    needs_args: Tuple[int, ...]
    actions: Tuple[Action, ...]
    kfunc: Optional[str] = None  # fentry: the kernel function (KFUNC_PROBE declares c_name)
    # raw sys_enter/sys_exit of a probe on several syscalls: only these (kept by a switch)
    filter_nrs: Tuple[int, ...] = ()
    helpers: Tuple[str, ...] = ()  # builtins.HELPER_LOCALS read once at entry, e.g. pid_tgid
    syscall_number: Optional[int] = None  # a kretprobe on one syscall's function: its number


@dataclass(frozen=True)
class Candidate:
    """One way to attach a probe, tried in order."""

    kind: str  # kprobe | kretprobe | tracepoint | raw_tracepoint | uprobe
    target: str  # what BCC attaches to (a syscall name for syscall kprobes)
    syscall: Optional[str]  # set for the kprobe form of `syscall:`
    function: Function
    describe: str  # e.g. "tracepoint syscalls:sys_enter_execve"
    # A sampling target as written, `{params.NAME}` in it (profile:hz:{params.hz}): `target`
    # has the values filled in, and runner/check/params.py's apply fills it again; "" if none.
    template: str = ""
    # Further targets the same function attaches to, all or none (the per-syscall
    # tracepoints of a probe on several syscalls, where raw sys_enter is not there).
    more: Tuple[str, ...] = ()

    @property
    def targets(self) -> Tuple[str, ...]:
        return (self.target, *self.more)


@dataclass(frozen=True)
class TableFill:
    map: Map
    default: Optional[str]  # program name
    entries: Tuple[Tuple[int, str, str], ...]  # (slot, program, slot label)


@dataclass(frozen=True)
class Probe:
    name: str
    origin: str
    optional: bool
    candidates: Tuple[Candidate, ...]
    tables: Tuple[TableFill, ...]  # prog_arrays reachable from this probe, filled before attach


@dataclass(frozen=True)
class Program:
    name: str
    origin: str
    functions: Tuple[Function, ...]  # one per context of the probes that reach it


@dataclass(frozen=True)
class EventOutput:
    map: Map
    struct: Struct
    format: str
    origin: str
    decode: Tuple[Tuple[str, str], ...] = ()  # (field, decoder): runner/runtime/readable.py


@dataclass(frozen=True)
class MessageDef:  # a print (runner/check/actions/print_.py): `format` over its members
    id: int
    struct: Optional[Struct]
    format: str
    origin: str
    keys: Tuple[Tuple[str, str], ...] = ()  # (member, JSON key: args.ret -> ret) if they differ
    decodes: Tuple[Tuple[str, str, str], ...] = ()  # (slot, member, decoder name)
    data_keys: Tuple[str, ...] = ()  # every key of JSON's `data` (for tests' `where`)


@dataclass(frozen=True)
class MapOutput:
    map: Map
    format: str
    separator: str
    every: Optional[float]
    at_exit: bool
    origin: str


@dataclass(frozen=True)
class Spec:
    name: str
    file: str  # as given, for the generated header (never an absolute path)
    arch: str
    structs: Tuple[Struct, ...]  # in dependency order, internal ones last
    maps: Tuple[Map, ...]
    probes: Tuple[Probe, ...]
    programs: Tuple[Program, ...]
    drops: Tuple[Drop, ...]
    messages: Tuple[MessageDef, ...]
    messages_via: str  # "buffer" | "trace_pipe"
    message_buffer: Optional[Map]  # ebpf-run's own ring buffer for print actions
    events: Tuple[EventOutput, ...]
    map_outputs: Tuple[MapOutput, ...]
    aggregations: Tuple[Aggregation, ...] = ()
    params: Tuple[Param, ...] = ()
    tests: Tuple[TestCase, ...] = ()  # the spec's own test cases, for `ebpf-run test`
    stacks: Tuple[StackMap, ...] = ()  # one per stack depth the spec's keys use
    # A ring of pids, each sent the first time a ustack is taken in it, so that ebpf-run
    # reads its mappings while it lives (runner/runtime/stacks.py); None without a ustack.
    stack_pids: Optional[StackPids] = None
    # `--cgroup PATH`: every probe's program first drops the tasks outside this cgroup.
    cgroup_filter: Optional[CgroupRef] = None


@dataclass(frozen=True)
class Rendered:
    """The generated BPF C and Python types (here, not in render.py, so that a cached
    entry unpickles without importing Jinja)."""

    c: str
    python: str
