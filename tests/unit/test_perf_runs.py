"""The in-place perf reader's parsing of a copied buffer: runs of equal samples, the
kernel's lost records skipped (losses are counted in the kernel instead)."""

from __future__ import annotations

import struct

import pytest

from runner.codegen.render import render
from runner.errors import KernelError
from runner.kernel.perf import RECORD_HEADER, _runs
from runner.runtime import decode

from .test_output import RING_SPEC
from .util import spec_from_text


def sample(payload: bytes) -> bytes:
    raw = (len(payload) + 4 + 7) // 8 * 8 - 4  # the kernel pads raw data so records align
    body = struct.pack("=I", raw) + payload.ljust(raw, b"\0")
    return struct.pack("=IHH", 9, 0, 8 + len(body)) + body


def lost(n: int) -> bytes:
    return struct.pack("=IHHQQ", 2, 0, 24, 0, n)


def test_equal_samples_form_one_run():
    buf = b"".join(sample(bytes([i]) * 48) for i in range(5))
    assert _runs(buf) == [(0, 52, 5)]
    assert len(buf) == 5 * (RECORD_HEADER + 52)


def test_a_lost_record_splits_runs_and_is_skipped():
    a, b = sample(b"a" * 48), sample(b"b" * 20)
    buf = a + a + lost(7) + a + b + b
    assert _runs(buf) == [(0, 52, 2), (152, 52, 1), (216, 20, 2)]


def test_a_record_shorter_than_its_header_is_refused():
    with pytest.raises(KernelError):
        _runs(struct.pack("=IHH", 9, 0, 0))


def test_the_batch_path_reads_perf_samples_as_the_record_path_does():
    spec = spec_from_text(RING_SPEC)
    module = decode.load_types(render(spec).python, spec)
    ev = next(s for s in spec.structs if s.name == "ev_t")
    data = sample(struct.pack("=i16s", 7, b"bash")) + sample(struct.pack("=i16s", 8, b"sh"))
    assert _runs(data) == [(0, 20, 2)]
    record = decode.record_decoder(module, ev, padded=True)
    stride = len(data) // 2
    by_record = ["{pid} {command}".format_map(record.at(data, off))
                 for off in range(RECORD_HEADER, len(data), stride)]
    batch = decode.batch_formatter(module, ev, "{pid} {command}", RECORD_HEADER)
    assert batch is not None and batch(data) == by_record == ["7 bash", "8 sh"]
