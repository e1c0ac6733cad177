"""The compiled-program cache without a kernel: finding and patching map fds in BPF
instructions, and what the key covers."""

from __future__ import annotations

import struct
import types

from runner.kernel import object_cache


def insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("=BBhi", code, (src << 4) | dst, off, imm)


def ld_map(fd: int, src: int = 1) -> bytes:
    return insn(0x18, 1, src, 0, fd) + insn(0, 0, 0, 0, 0)  # BPF_LD_IMM64 takes two slots


PROGRAM = (insn(0xb7, 0, 0, 0, 0) + ld_map(5) + ld_map(-1, src=0) + ld_map(4, src=2)
           + insn(0x95))


def test_map_fds_are_found_where_bcc_put_them():
    assert object_cache.map_references(PROGRAM, {5: 0, 4: 1}) == ((1, 0), (5, 1))


def test_an_fd_of_no_map_of_the_module_makes_the_program_uncacheable():
    assert object_cache.map_references(PROGRAM, {5: 0}) is None


def test_new_fds_are_patched_in_and_nothing_else_changes():
    out = object_cache.patched(PROGRAM, ((1, 0), (5, 1)), [40, 41])
    assert struct.unpack_from("=i", out, 1 * 8 + 4)[0] == 40
    assert struct.unpack_from("=i", out, 5 * 8 + 4)[0] == 41
    assert out[:12] == PROGRAM[:12] and out[16:44] == PROGRAM[16:44]


def test_the_key_follows_the_program_bcc_and_its_environment(monkeypatch):
    bcc = types.SimpleNamespace(__version__="0.26.0")
    base = object_cache.key(bcc, "int x;")
    assert object_cache.key(bcc, "int x;") == base
    assert object_cache.key(bcc, "int y;") != base
    assert object_cache.key(types.SimpleNamespace(__version__="0.27.0"), "int x;") != base
    monkeypatch.setenv("BCC_KERNEL_SOURCE", "/elsewhere")
    assert object_cache.key(bcc, "int x;") != base
