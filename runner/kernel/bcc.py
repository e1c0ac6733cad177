"""Stage 5: the kernel. The only module that imports bcc.

It compiles the rendered C, fills tail-call tables, attaches each probe by the
first attach option that works (saying why the earlier ones did not), opens the
channels to user space, polls them, reads the loss counters and map contents,
and releases everything on close. Callers see project exceptions only.
"""

from __future__ import annotations

import ctypes as ct
import errno
import mmap
import os
import re
import select
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

from runner.errors import EnvironmentProblem, KernelError
from runner.model.spec import Candidate, Function, Map, Probe, Spec, TableFill

TRACEFS = "/sys/kernel/tracing"
ORIGIN_RE = re.compile(r"/\* (\S.*?\(line \d+\)[^*]*?)\s*(?::|\*/)")
NOISE = ("modprobe: not found", "modprobe: FATAL")

DataCallback = Callable[[int, int], None]  # (address, size) of one record
LostCallback = Callable[[int], None]
# (records, size, count): `count` records of `size` bytes each, every one behind its 8-byte
# ring header and padded to a multiple of 8, as one bytes object.
RecordsCallback = Callable[[bytes, int, int], None]
# Ring buffers are read every DRAIN_MS while records arrive, backing off to IDLE_MS when
# they stop, so an idle run costs next to nothing. The programs wake us for a record only
# when their CPU has not done so for 2 ms (er_wake_flags): a lone record is read at once,
# a stream costs at most 500 wakeups a second per CPU instead of one per record.
DRAIN_MS = 2
IDLE_MS = 100


def import_bcc() -> Any:
    """Import BCC, or say exactly how to get it."""
    try:
        import bcc
    except ImportError as e:
        raise EnvironmentProblem(
            f"BCC's Python module cannot be imported ({e}). Install it from the distribution "
            "(apt-get install python3-bpfcc) and run ebpf-run with /usr/bin/python3 or a venv "
            "made with --system-site-packages; ./scripts/setup does both. Do not pip install "
            "'bcc': that PyPI package is unrelated.") from None
    if not hasattr(bcc, "BPF"):
        raise EnvironmentProblem(
            f"the 'bcc' module at {getattr(bcc, '__file__', '?')} is not BCC (the unrelated "
            "PyPI package?). pip uninstall bcc; apt-get install python3-bpfcc") from None
    return bcc


@dataclass(frozen=True)
class Attached:
    probe: str
    method: Optional[str]  # None when nothing attached
    skipped: Tuple[Tuple[str, str], ...]  # (method, reason) of the options tried first
    optional: bool


@dataclass
class Kernel:
    """A loaded spec. Use as a context manager: leaving it releases everything."""

    spec: Spec
    c_source: str
    bpf: Any = None
    bcc: Any = None
    rings: List[Any] = field(default_factory=list)  # RingReader or CallbackRingReader
    _epoll: Any = None
    _interval: int = DRAIN_MS
    has_perf: bool = False
    trace_pipe: Any = None

    def __enter__(self) -> Kernel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- load ------------------------------------------------------------------------------

    def load(self) -> None:
        check_privileges()
        self.bcc = import_bcc()
        check_headers()
        with _CapturedStderr() as err:
            try:
                self.bpf = _quiet_bpf_class(self.bcc)(text=self.c_source.encode())
            except Exception as e:  # BCC raises bare Exception for every failure
                failure: Optional[Exception] = e
            else:
                failure = None
        if failure is not None:
            raise self._load_error(failure, err.text) from None

    def _load_error(self, failure: Exception, stderr: str) -> Exception:
        text = str(failure)
        if "kernel headers" in text.lower() or "unable to find kernel" in text.lower():
            return EnvironmentProblem(f"{text.strip()}. {HEADERS_FIX}")
        errors = [ln for ln in stderr.splitlines() if " error: " in ln]
        if not errors:
            return KernelError(f"BCC could not load the program: {text.strip()}\n{stderr}")
        return KernelError("the generated C does not compile:\n" + "\n".join(
            self._explain_compile_error(ln) for ln in errors[:10]))

    def _explain_compile_error(self, line: str) -> str:
        m = re.match(r".*?:(\d+):(\d+): error: (.*)", line)
        if not m:
            return line
        num = int(m.group(1))
        lines = self.c_source.splitlines()
        code = lines[num - 1].strip() if 0 < num <= len(lines) else "?"
        origin = next((o.group(1) for ln in reversed(lines[:num])
                       if (o := ORIGIN_RE.search(ln))), "the generated prologue")
        return (f"  generated line {num}: {m.group(3)}\n      {code}\n"
                f"    from spec element: {origin}")

    # -- attach ----------------------------------------------------------------------------

    def attach(self, probe: Probe) -> Attached:
        skipped: List[Tuple[str, str]] = []
        for cand in probe.candidates:
            reason = self._unavailable(cand)
            if reason is None:
                reason = self._try_attach(probe, cand)
                if reason is None:
                    return Attached(probe.name, cand.describe, tuple(skipped), probe.optional)
            skipped.append((cand.describe, reason))
        return Attached(probe.name, None, tuple(skipped), probe.optional)

    def _unavailable(self, cand: Candidate) -> Optional[str]:
        """A reason this option cannot work here, found without loading anything."""
        if cand.kind in ("kprobe", "kretprobe") and not os.path.exists(
                f"{TRACEFS}/kprobe_events"):
            return "kernel has no kprobes (CONFIG_KPROBES is off)"
        if cand.kind == "tracepoint":
            cat, _, name = cand.target.partition(":")
            if not os.path.isdir(f"{TRACEFS}/events/{cat}/{name}"):
                return f"no tracepoint {cand.target} in {TRACEFS}/events"
        if cand.kind == "fentry":
            return self._fentry_precheck()
        if cand.kind == "uprobe":
            path = cand.target.rsplit(":", 1)[0]
            if not os.path.exists(path):
                return f"{path} does not exist"
        return None

    def _try_attach(self, probe: Probe, cand: Candidate) -> Optional[str]:
        name = cand.function.c_name
        # libbcc and libbpf print their own complaints on fd 2; the reason we give says it.
        with _CapturedStderr() as noise:
            try:
                # attach_kfunc loads its own program; the others are loaded here.
                if cand.kind != "fentry":
                    self._load_function(cand.function)
                for table in probe.tables:
                    self._fill(table, cand.function.context)
                self._attach(cand, name)
            except Exception as e:  # BCC's bare Exceptions: turn them into a reason
                failure: Optional[Exception] = e
            else:
                failure = None
        if failure is None:
            return None
        self._unload(name)
        reason = _reason(failure)
        detail = noise.text.strip().splitlines()
        return f"{reason} [{detail[-1].strip()}]" if detail and len(reason) < 40 else reason

    def _attach(self, cand: Candidate, c_name: str) -> None:
        b = self.bpf
        name, target = c_name.encode(), cand.target.encode()  # BCC wants bytes
        if cand.kind == "kprobe" and cand.syscall:
            event = b.get_syscall_fnname(cand.syscall.encode())
            if b.ksymname(event) == -1:
                raise KernelError(f"no kernel symbol {event.decode()}")
            b.attach_kprobe(event=event, fn_name=name)
        elif cand.kind == "kprobe":
            b.attach_kprobe(event=target, fn_name=name)
        elif cand.kind == "kretprobe":
            b.attach_kretprobe(event=target, fn_name=name)
        elif cand.kind == "tracepoint":
            b.attach_tracepoint(tp=target, fn_name=name)
        elif cand.kind == "raw_tracepoint":
            b.attach_raw_tracepoint(tp=target, fn_name=name)
        elif cand.kind == "uprobe":
            path, sym = target.rsplit(b":", 1)
            b.attach_uprobe(name=path, sym=sym, fn_name=name)
        elif cand.kind == "fentry":
            b.attach_kfunc(fn_name=target)

    def _fentry_precheck(self) -> Optional[str]:
        if not os.path.exists("/sys/kernel/btf/vmlinux"):
            return "no kernel BTF (/sys/kernel/btf/vmlinux)"
        if not self.bcc.BPF.support_kfunc():
            return "BCC reports no BPF trampoline support on this kernel"
        return None

    def _load_function(self, fn: Function) -> Any:
        prog_type = getattr(self.bcc.BPF, fn.prog_type)
        return self.bpf.load_func(fn.c_name.encode(), prog_type)

    def _unload(self, c_name: str) -> None:
        fn = self.bpf.funcs.pop(c_name.encode(), None)
        if fn is not None:
            os.close(fn.fd)

    def _fill(self, table: TableFill, context: str) -> None:
        """Default into every slot, then the named entries; read back; only then attach."""
        arr = self.bpf[table.map.name.encode()]
        fds = {}

        def fd_of(prog: str) -> int:
            if prog not in fds:
                fn = self._load_function(_program_function(self.spec, prog, context))
                fds[prog] = fn.fd
            return fds[prog]

        want: Dict[int, int] = {}
        if table.default:
            for slot in range(table.map.max_entries):
                want[slot] = fd_of(table.default)
        for slot, prog, _ in table.entries:
            want[slot] = fd_of(prog)
        for slot, fd in want.items():
            arr[ct.c_int(slot)] = ct.c_int(fd)
        ids = {fd: _prog_id(fd) for fd in set(want.values())}
        for slot, fd in want.items():
            got = _read_prog_slot(self.bcc, arr.map_fd, slot)
            if got != ids[fd]:
                raise KernelError(f"tail-call table {table.map.name}[{slot}] holds program id "
                                  f"{got}, expected {ids[fd]}")

    # -- channels --------------------------------------------------------------------------

    def open_perf(self, m: Map, on_data: DataCallback, on_lost: LostCallback,
                  wakeup_events: int = 1) -> None:
        def data(_cpu: int, addr: int, size: int) -> None:
            on_data(addr, size)

        self.bpf[m.name.encode()].open_perf_buffer(
            data, page_cnt=m.pages, lost_cb=on_lost, wakeup_events=wakeup_events)
        self.has_perf = True

    def open_ring(self, m: Map, on_records: RecordsCallback) -> None:
        """Read the ring through its mmap: no libbpf callback, so no ctypes call per record."""
        fd = self.bpf[m.name.encode()].map_fd
        in_place = os.uname().machine == "x86_64" and \
            os.environ.get("EBPF_RUN_RING_READER") != "callback"  # the switch is for tests
        if in_place:
            self.rings.append(RingReader(fd, m.pages * mmap.PAGESIZE, on_records))
        else:  # the in-place reader relies on x86-64 memory ordering
            self.rings.append(CallbackRingReader(self.bcc, fd, on_records))
        if self._epoll is None:
            self._epoll = select.epoll()
        # Edge-triggered: epoll_wait returns on a forced wakeup, not whenever data waits.
        self._epoll.register(fd, select.EPOLLIN | select.EPOLLET)

    def open_trace_pipe(self, tag: int) -> Any:
        cfg = self.bpf[b"er_config"]
        cfg[ct.c_int(0)] = ct.c_uint32(tag)
        try:
            self.trace_pipe = self.bpf.trace_open(nonblocking=True)
        except OSError as e:
            if e.errno == errno.EBUSY:
                raise EnvironmentProblem(
                    f"{TRACEFS}/trace_pipe is busy: the kernel allows one reader, and another "
                    "program (another run with messages via trace_pipe, or a `cat "
                    "trace_pipe`) holds it. Stop it, or use the default `messages: {via: "
                    "buffer}`, which any number of runs can use at once") from None
            raise EnvironmentProblem(f"cannot open {TRACEFS}/trace_pipe: {e}") from None
        return self.trace_pipe

    def poll(self, timeout_ms: int) -> None:
        """Wait up to timeout_ms (less while ring records flow), then read every buffer."""
        if self.rings:
            timeout_ms = min(timeout_ms, self._interval)
        if self.has_perf:
            self.bpf.perf_buffer_poll(timeout_ms)
        elif self.rings:
            self._epoll.poll(timeout_ms / 1000)
        elif timeout_ms > 0:
            time.sleep(timeout_ms / 1000)
        got = sum(ring.drain() for ring in self.rings)
        self._interval = DRAIN_MS if got else min(self._interval * 2, IDLE_MS)

    def drain(self) -> None:
        """Read what is left in every buffer without waiting."""
        for ring in self.rings:
            while ring.drain():
                pass
        if self.has_perf:
            self.bpf.perf_buffer_consume()

    # -- maps ------------------------------------------------------------------------------

    def drop_counts(self) -> List[int]:
        if not self.spec.drops:
            return []
        table = self.bpf[b"er_drops"]
        return [sum(int(v) for v in table.getvalue(table.Key(d.index)))
                for d in self.spec.drops]

    def map_items(self, m: Map) -> List[Tuple[bytes, List[bytes]]]:
        """(key bytes, [value bytes per CPU, or one]) for every entry, in map order."""
        table = self.bpf[m.name.encode()]
        out = []
        for k, v in table.items():
            values = list(v) if m.kind.startswith("percpu") else [v]
            out.append((bytes(k), [bytes(x) for x in values]))
        return out

    # -- cleanup ---------------------------------------------------------------------------

    def close(self) -> None:
        if self.bpf is not None:
            bpf, self.bpf = self.bpf, None
            try:
                for ring in self.rings:
                    ring.close()
                if self._epoll is not None:
                    self._epoll.close()
                bpf.cleanup()
            finally:
                self.rings.clear()

# -- ring buffers read in place ------------------------------------------------------------

_BUSY = 1 << 31  # the producer reserved the record and has not submitted it yet
_DISCARD = 1 << 30  # submitted as discarded: skip it
_libc = ct.CDLL(None, use_errno=True)
_libc.mmap.restype = ct.c_void_p
_libc.mmap.argtypes = (ct.c_void_p, ct.c_size_t, ct.c_int, ct.c_int, ct.c_int, ct.c_long)
_libc.munmap.argtypes = (ct.c_void_p, ct.c_size_t)


class CallbackRingReader:
    """The portable reader: libbpf's ring_buffer__consume with one ctypes callback per
    record, each passed on as a run of one (with a zeroed 8-byte header, like RingReader's)."""

    def __init__(self, bcc: Any, fd: int, on_records: RecordsCallback):
        self.lib = bcc.libbcc.lib
        self.consumed = 0

        def cb(_ctx: Any, addr: int, size: int) -> int:
            stride = (size + 8 + 7) & ~7
            on_records(bytes(8) + ct.string_at(addr, size) + bytes(stride - 8 - size), size, 1)
            self.consumed += stride
            return 0

        self._cb = bcc.table._RINGBUF_CB_TYPE(cb)  # kept alive as long as the reader
        self.manager = self.lib.bpf_new_ringbuf(fd, self._cb, None)
        if not self.manager:
            raise KernelError("could not open a ring buffer")

    def drain(self) -> int:
        self.consumed = 0
        self.lib.bpf_consume_ringbuf(self.manager)
        return self.consumed

    def close(self) -> None:
        if self.manager:
            self.lib.bpf_free_ringbuf(self.manager)
            self.manager = None


class RingReader:
    """A BPF ring buffer read through its mmap, the way libbpf does it, a batch at a time.

    Layout: the consumer position on a page we may write; then, read-only, the producer
    position on the next page, followed by the data area mapped twice in a row, so a
    record that wraps around is contiguous. Every record has an 8-byte header (length
    with BUSY and DISCARD bits, page offset) and is padded to 8 bytes.

    A drain copies [consumer, producer) once to read the headers and find the committed
    prefix, then copies that prefix again, so no data byte is read before the header that
    says it is complete; then it hands the space back to the kernel and passes the records
    on in runs of equal size. Plain loads and stores: this relies on x86-64 ordering (TSO);
    other architectures need acquire/release and should keep libbpf's callback reader.
    """

    def __init__(self, fd: int, size: int, on_records: RecordsCallback):
        page = mmap.PAGESIZE
        self.size, self.mask, self.on_records = size, size - 1, on_records
        self._maps: List[Tuple[int, int]] = []
        cons = self._map(fd, page, mmap.PROT_READ | mmap.PROT_WRITE, 0)
        prod = self._map(fd, page + 2 * size, mmap.PROT_READ, page)
        self.cons = ct.c_uint64.from_address(cons)
        self.prod = ct.c_uint64.from_address(prod)
        self.data = prod + page

    def _map(self, fd: int, length: int, prot: int, offset: int) -> int:
        addr = _libc.mmap(None, length, prot, mmap.MAP_SHARED, fd, offset)
        if addr in (None, ct.c_void_p(-1).value):
            raise KernelError(f"cannot mmap ring buffer: {os.strerror(ct.get_errno())}")
        self._maps.append((addr, length))
        return int(addr)

    def drain(self) -> int:
        """Pass on every committed record; return how many bytes were consumed."""
        cons = self.cons.value
        avail = self.prod.value - cons
        if not avail:
            return 0
        start = self.data + (cons & self.mask)
        end, runs = _committed(ct.string_at(start, avail))
        if not end:
            return 0
        data = ct.string_at(start, end)
        self.cons.value = cons + end  # the space is the kernel's again before we decode
        for off, size, count, stride in runs:
            self.on_records(data if off == 0 and count * stride == end
                            else data[off:off + count * stride], size, count)
        return end

    def close(self) -> None:
        for addr, length in self._maps:
            _libc.munmap(addr, length)
        self._maps.clear()


def _committed(buf: bytes) -> Tuple[int, List[Tuple[int, int, int, int]]]:
    """(bytes to consume, runs of (offset, size, count, stride)) from a copy of the ring."""
    words = memoryview(buf).cast("I")
    pos, runs = 0, []
    while pos + 8 <= len(buf):
        hdr = words[pos // 4]
        if hdr & _BUSY:
            break
        size = hdr & ~(_BUSY | _DISCARD)
        stride = (size + 8 + 7) & ~7
        if hdr & _DISCARD:
            pos += stride
            continue
        # How many records from here carry this same header: one comparison, not a loop.
        most = (len(buf) - pos) // stride
        heads = words[pos // 4::stride // 4][:most].tobytes()
        want = hdr.to_bytes(4, "little")
        count = most if heads == want * most else _same_prefix(heads, want)
        runs.append((pos, size, count, stride))
        pos += count * stride
    return pos, runs


def _same_prefix(heads: bytes, want: bytes) -> int:
    """How many leading 4-byte words of heads equal want: the first does, not all do."""
    lo, hi = 1, len(heads) // 4 - 1
    while lo < hi:  # invariant: the first lo words match; the answer is at most hi
        mid = (lo + hi + 1) // 2
        if heads[:mid * 4] == want * mid:
            lo = mid
        else:
            hi = mid - 1
    return lo


HEADERS_FIX = ("Install the headers of the running kernel (apt-get install "
               "linux-headers-$(uname -r)) or run ./scripts/setup, which links the nearest "
               "available ones; `ebpf-run doctor` shows what is found.")


def check_privileges() -> None:
    if os.geteuid() == 0 or _has_caps(("bpf", 39), ("perfmon", 38)):
        return
    raise EnvironmentProblem("loading BPF programs needs root, or CAP_BPF and CAP_PERFMON: "
                             "run ebpf-run with sudo")


def _has_caps(*caps: Tuple[str, int]) -> bool:
    try:
        with open("/proc/self/status") as f:
            eff = next(int(ln.split()[1], 16) for ln in f if ln.startswith("CapEff:"))
    except (OSError, StopIteration, ValueError):
        return False
    return all(eff & (1 << bit) for _, bit in caps)


def check_headers() -> None:
    release = os.uname().release
    if os.environ.get("BCC_KERNEL_SOURCE"):
        return
    if not os.path.exists(f"/lib/modules/{release}/build") and not os.path.exists(
            "/sys/kernel/kheaders.tar.xz"):
        raise EnvironmentProblem(f"no kernel headers for {release}. {HEADERS_FIX}")


def tracefs_mounted() -> bool:
    return os.path.exists(f"{TRACEFS}/events")


def _program_function(spec: Spec, prog: str, context: str) -> Function:
    for p in spec.programs:
        if p.name == prog:
            for fn in p.functions:
                if fn.context == context:
                    return fn
    raise KernelError(f"program {prog} has no {context} variant")  # build.py prevents this


def _prog_id(fd: int) -> int:
    with open(f"/proc/self/fdinfo/{fd}") as f:
        for line in f:
            if line.startswith("prog_id:"):
                return int(line.split()[1])
    raise KernelError(f"cannot read the id of BPF program fd {fd}")


def _read_prog_slot(bcc: Any, map_fd: int, slot: int) -> int:
    """A prog_array slot read from user space gives the program's id."""
    key = ct.c_uint32(slot)
    val = ct.c_uint32(0)
    rc = bcc.libbcc.lib.bpf_lookup_elem(map_fd, ct.byref(key), ct.byref(val))
    return val.value if rc == 0 else -1


def _quiet_bpf_class(bcc: Any) -> Any:
    """BCC's BPF, minus attaching by function-name prefix while compiling.

    BCC attaches functions named kprobe__*, kfunc__* and so on from its constructor, before
    any table is filled and with no fallback. ebpf-run attaches everything itself, in order.
    """

    class QuietBPF(bcc.BPF):  # type: ignore[misc, name-defined]
        def _trace_autoload(self) -> None:
            return None

    return QuietBPF


def _reason(e: Exception) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if text == "Need super-user privileges to run" and os.geteuid() == 0:
        # BCC words every EPERM from a load as a privilege problem; as root it is the kernel.
        return "the kernel refused to load the program (EPERM) although we are root"
    if "not traceable" in text or ("Failed to attach BPF program" in text and "kprobe" in text):
        return f"{text} (kernel has no kprobes, or the function cannot be probed)"
    return text


class _CapturedStderr:
    """Collect what clang and libbcc write to fd 2 during a compile, minus known noise."""

    def __enter__(self) -> _CapturedStderr:
        self.file = tempfile.TemporaryFile(mode="w+b")
        self.saved = os.dup(2)
        os.dup2(self.file.fileno(), 2)
        self.text = ""
        return self

    def __exit__(self, *exc: object) -> None:
        os.dup2(self.saved, 2)
        os.close(self.saved)
        self.file.seek(0)
        raw = self.file.read().decode("utf-8", "replace")
        self.file.close()
        self.text = "\n".join(ln for ln in raw.splitlines() if not ln.startswith(NOISE))


# -- what this kernel can attach (for `ebpf-run doctor`) -----------------------------------

_PROBE_C = """
int er_probe_kprobe(struct pt_regs *ctx) { return 0; }
int er_probe_tracepoint(void *ctx) { return 0; }
int er_probe_raw(struct bpf_raw_tracepoint_args *ctx) { return 0; }
"""
_FENTRY_C = "KFUNC_PROBE(%s) { return 0; }\n"


def try_attach_kinds() -> Dict[str, Tuple[bool, str]]:
    """Attach a do-nothing program by each method, detach at once; report what happened."""
    bcc = import_bcc()
    results: Dict[str, Tuple[bool, str]] = {}
    with _CapturedStderr():
        b = bcc.BPF(text=_PROBE_C.encode())
    try:
        fn = b.get_syscall_fnname(b"getpid").decode()
        attempts = {
            "kprobe": lambda: b.attach_kprobe(event=fn, fn_name=b"er_probe_kprobe"),
            "tracepoint": lambda: b.attach_tracepoint(tp=b"syscalls:sys_enter_getpid",
                                                      fn_name=b"er_probe_tracepoint"),
            "raw_tracepoint": lambda: b.attach_raw_tracepoint(tp=b"sys_enter",
                                                              fn_name=b"er_probe_raw"),
        }
        details = {"kprobe": fn, "tracepoint": "syscalls:sys_enter_getpid",
                   "raw_tracepoint": "sys_enter"}
        for kind, attempt in attempts.items():
            try:
                with _CapturedStderr():  # libbcc prints its own complaint; we report it
                    attempt()
                results[kind] = (True, f"attached to {details[kind]}")
            except Exception as e:  # BCC's bare Exception
                results[kind] = (False, _reason(e))
    finally:
        b.cleanup()
    results["fentry"] = _try_fentry(bcc)
    return results


def _try_fentry(bcc: Any) -> Tuple[bool, str]:
    # BCC attaches KFUNC_PROBE programs while constructing BPF(), so this gets its own object.
    if not bcc.BPF.support_kfunc():
        return False, "BCC or the kernel reports no BPF trampoline support"
    b = None
    try:
        with _CapturedStderr() as err:
            try:
                b = bcc.BPF(text=(_FENTRY_C % "do_nanosleep").encode())
            except Exception as e:  # BCC's bare Exception
                failure: Optional[Exception] = e
            else:
                failure = None
        if failure is not None:
            if "super-user" in str(failure) and os.geteuid() == 0:
                # BCC words every EPERM as a privilege problem; as root it is the kernel.
                return False, "the kernel refused to load a trampoline program (EPERM) to root"
            return False, _reason(failure) + (f": {err.text.strip()}" if err.text.strip() else "")
        return True, "attached to do_nanosleep"
    finally:
        if b is not None:
            b.cleanup()


def bcc_info() -> Tuple[str, str]:
    """(version, file) of the bcc module that imports."""
    bcc = import_bcc()
    version = getattr(getattr(bcc, "version", None), "__version__", "unknown")
    return str(version), str(getattr(bcc, "__file__", "?"))
