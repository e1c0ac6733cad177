"""BPF ring buffers: read in place through their mmap, or through libbpf's callback.

Either reader's drain is bounded, so a producer faster than the reader cannot keep one
drain going: the in-place reader passes on what was committed when it started, libbpf's
callback reader stops after a budget of records.
"""

from __future__ import annotations

import ctypes as ct
import mmap
import os
from typing import Any, Callable, List, Tuple

from runner.errors import KernelError

# (records, size, count): `count` records of `size` bytes each, every one behind its 8-byte
# ring header and padded to a multiple of 8, as one bytes object.
RecordsCallback = Callable[[bytes, int, int], None]

_BUSY = 1 << 31  # the producer reserved the record and has not submitted it yet
_DISCARD = 1 << 30  # submitted as discarded: skip it
_libc = ct.CDLL(None, use_errno=True)
_libc.mmap.restype = ct.c_void_p
_libc.mmap.argtypes = (ct.c_void_p, ct.c_size_t, ct.c_int, ct.c_int, ct.c_int, ct.c_long)
_libc.munmap.argtypes = (ct.c_void_p, ct.c_size_t)


class CallbackRingReader:
    """The portable reader: libbpf's ring_buffer__consume with one ctypes callback per
    record, each passed on as a run of one (with a zeroed 8-byte header, like RingReader's).

    ring_buffer__consume reads until the ring is empty, which a producer faster than the
    reader never lets happen: nothing would be printed and the lines would pile up. After
    BUDGET records the callback returns -1, which makes libbpf keep that record consumed
    and return, so a drain is bounded like the in-place reader's.
    """

    BUDGET = 16384  # records per drain

    def __init__(self, bcc: Any, fd: int, on_records: RecordsCallback):
        self.lib = bcc.libbcc.lib
        self.consumed = 0
        self.records = 0

        def cb(_ctx: Any, addr: int, size: int) -> int:
            stride = (size + 8 + 7) & ~7
            on_records(bytes(8) + ct.string_at(addr, size) + bytes(stride - 8 - size), size, 1)
            self.consumed += stride
            self.records += 1
            return -1 if self.records >= self.BUDGET else 0

        self._cb = bcc.table._RINGBUF_CB_TYPE(cb)  # kept alive as long as the reader
        self.manager = self.lib.bpf_new_ringbuf(fd, self._cb, None)
        if not self.manager:
            raise KernelError("could not open a ring buffer")

    def drain(self) -> int:
        self.consumed = self.records = 0
        self.lib.bpf_consume_ringbuf(self.manager)  # -1 after BUDGET records: not an error
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
