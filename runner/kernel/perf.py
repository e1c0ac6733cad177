"""Perf event arrays: one buffer per CPU, read in place through its mmap a batch at a time,
or (other architectures) through BCC's perf reader with one callback per record.

Neither wakes the reader per record. BCC's default (wakeup_events=1) charges the traced
program a wakeup for every record (3.5-5 us each, measured here); instead a buffer wakes
the reader when it is half full (a byte watermark) and the runtime drains every buffer on
its short poll timeout (session.Kernel.poll), so a lone record still arrives within one
poll interval. Losses stay counted in the kernel (a failed perf_submit increments a
per-CPU counter), so the kernel's own PERF_RECORD_LOST records are skipped, not added.
"""

from __future__ import annotations

import ctypes as ct
import mmap
import os
import struct
from typing import Any, Callable, List, Tuple

from runner.errors import KernelError
from runner.model.spec import Map

DataCallback = Callable[[int, int], None]  # (address, size) of one record
LostCallback = Callable[[int], None]
# (records, raw size, count): `count` samples of one size, each behind the 12 bytes of its
# perf header and raw-size word, the stride being RECORD_HEADER + size.
RecordsCallback = Callable[[bytes, int, int], None]
RECORD_HEADER = 12

# Wake the reader once this fraction of a buffer is used; the timed drain does the rest.
WATERMARK_FRACTION = 2
# BCC's callback reader has no watermark: wake it every N records instead.
CALLBACK_WAKEUP_EVENTS = 64

_PERF_TYPE_SOFTWARE = 1
_PERF_COUNT_SW_BPF_OUTPUT = 10
_PERF_SAMPLE_RAW = 1 << 10
_ATTR_WATERMARK = 1 << 14
_ATTR_SIZE = 112  # PERF_ATTR_SIZE_VER5: every field used here, and every kernel since 4.17
_PERF_FLAG_FD_CLOEXEC = 8
_PERF_EVENT_IOC_ENABLE = 0x2400
_PERF_RECORD_SAMPLE = 9
_SYS_PERF_EVENT_OPEN = {"x86_64": 298, "aarch64": 241}
_HEAD = struct.Struct("=Q")  # data_head at 1024 and data_tail at 1032 of the control page
_libc = ct.CDLL(None, use_errno=True)


def in_place_supported() -> bool:
    # Plain loads of data_head and stores of data_tail rely on x86-64 ordering (TSO), as
    # the in-place ring reader does.
    return os.uname().machine == "x86_64"


def open_perf_callback(bpf: Any, m: Map, on_data: DataCallback, on_lost: LostCallback) -> None:
    """BCC's reader: one ctypes callback per record (Kernel.poll consumes after each poll)."""
    def data(_cpu: int, addr: int, size: int) -> None:
        on_data(addr, size)

    bpf[m.name.encode()].open_perf_buffer(
        data, page_cnt=m.pages, lost_cb=on_lost, wakeup_events=CALLBACK_WAKEUP_EVENTS)


def open_perf_in_place(bcc: Any, bpf: Any, m: Map,
                       on_records: RecordsCallback) -> List[PerfReader]:
    """One reader per online CPU, each registered in the map under its CPU."""
    table = bpf[m.name.encode()]
    readers: List[PerfReader] = []
    try:
        for cpu in bcc.utils.get_online_cpus():
            reader = PerfReader(cpu, m.pages, on_records)
            readers.append(reader)
            table[table.Key(cpu)] = table.Leaf(reader.fd)
    except BaseException:
        for reader in readers:
            reader.close()
        raise
    return readers


class PerfReader:
    """One CPU's perf buffer, read through its mmap.

    Layout: a control page (data_head at 1024, written by the kernel; data_tail at 1032,
    ours), then the data area, not mapped twice, so a batch that wraps is copied in two
    parts. Everything before data_head is complete (the kernel publishes the head after
    the record), so a drain copies [tail, head) once, hands the space back, then passes on
    the samples in runs of equal size.
    """

    def __init__(self, cpu: int, pages: int, on_records: RecordsCallback):
        self.on_records = on_records
        self.size = pages * mmap.PAGESIZE
        self.fd = _perf_event_open(cpu, self.size // WATERMARK_FRACTION)
        try:
            try:
                self.map = mmap.mmap(self.fd, mmap.PAGESIZE + self.size, mmap.MAP_SHARED,
                                     mmap.PROT_READ | mmap.PROT_WRITE)
            except OSError as e:  # ENOMEM or EPERM: over perf_event_mlock_kb without root
                raise KernelError(f"cannot map a perf buffer of {pages} pages on CPU {cpu}: "
                                  f"{e.strerror}") from None
            if _libc.ioctl(self.fd, _PERF_EVENT_IOC_ENABLE, 0) != 0:
                raise KernelError("cannot enable a perf buffer: "
                                  + os.strerror(ct.get_errno()))
        except BaseException:
            os.close(self.fd)
            raise

    def drain(self) -> int:
        """Pass on every record written so far; return how many bytes were consumed."""
        head = _HEAD.unpack_from(self.map, 1024)[0]
        tail = _HEAD.unpack_from(self.map, 1032)[0]
        if head == tail:
            return 0
        base, size = mmap.PAGESIZE, self.size
        start, end = tail % size, head % size
        if start < end:
            data = self.map[base + start:base + end]
        else:
            data = self.map[base + start:base + size] + self.map[base:base + end]
        _HEAD.pack_into(self.map, 1032, head)  # the space is the kernel's again
        for off, raw, count in _runs(data):
            stride = 8 + 4 + raw
            self.on_records(data if off == 0 and count * stride == len(data)
                            else data[off:off + count * stride], raw, count)
        return head - tail

    def close(self) -> None:
        if self.fd >= 0:
            self.map.close()
            os.close(self.fd)
            self.fd = -1


def _runs(buf: bytes) -> List[Tuple[int, int, int]]:
    """(offset, raw size, count) of each run of equal-sized samples; other records (the
    kernel's lost records) are skipped."""
    words = memoryview(buf).cast("I")
    pos, runs = 0, []
    while pos + 8 <= len(buf):
        kind, rec_size = words[pos // 4], words[pos // 4 + 1] >> 16
        if rec_size < 8:
            raise KernelError(f"a perf buffer holds a record of {rec_size} bytes")
        if kind != _PERF_RECORD_SAMPLE:
            pos += rec_size
            continue
        # How many records from here have this same 8-byte header: one comparison.
        most = (len(buf) - pos) // rec_size
        want = buf[pos:pos + 8]
        step = rec_size // 4
        heads = words[pos // 4::step][:most].tobytes()
        if heads == want[:4] * most and words[pos // 4 + 1::step][:most].tobytes() == \
                want[4:] * most:
            count = most
        else:
            count = 1
            while count < most and buf[pos + count * rec_size:pos + count * rec_size + 8] \
                    == want:
                count += 1
        runs.append((pos, rec_size - RECORD_HEADER, count))
        pos += count * rec_size
    return runs


def _perf_event_open(cpu: int, watermark: int) -> int:
    nr = _SYS_PERF_EVENT_OPEN.get(os.uname().machine)
    if nr is None:
        raise KernelError(f"no perf_event_open number for {os.uname().machine}")
    attr = bytearray(_ATTR_SIZE)
    struct.pack_into("=IIQQQQQI", attr, 0, _PERF_TYPE_SOFTWARE, _ATTR_SIZE,
                     _PERF_COUNT_SW_BPF_OUTPUT, 1, _PERF_SAMPLE_RAW, 0, _ATTR_WATERMARK,
                     max(watermark, 1))
    buf = (ct.c_char * _ATTR_SIZE).from_buffer(attr)
    fd = _libc.syscall(nr, buf, -1, cpu, -1, _PERF_FLAG_FD_CLOEXEC)
    if fd < 0:
        raise KernelError(f"cannot open a perf buffer on CPU {cpu}: "
                          + os.strerror(ct.get_errno()))
    return int(fd)
