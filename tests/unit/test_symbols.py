"""Symbolization against small ELF files built here: a C program with known function
names, as a PIE and not, stripped and not, and a shared library loaded at a random base.
The programs print where their functions are and wait; the test resolves those addresses
through their /proc/PID/maps as the runtime does."""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import pytest

from runner.symbols.elf import ElfSymbols, read_elf
from runner.symbols.frames import Frame
from runner.symbols.kernel import KernelSymbols
from runner.symbols.maps import parse_maps
from runner.symbols.user import UserSymbols

PROGRAM = r"""
#include <stdio.h>
#include <unistd.h>
extern void *lib_where(void);
__attribute__((noinline)) int er_alpha(int x) { return x * 3 + 1; }
__attribute__((noinline)) static int er_beta(int x) { return er_alpha(x) ^ 5; }
int main(void) {
    printf("er_alpha %p\nbeta %p\nlib_work %p\n", (void *)er_alpha, (void *)er_beta,
           lib_where());
    fflush(stdout);
    read(0, (char[1]){0}, 1);  /* wait for the test */
    return er_beta(1);
}
"""
# The library says where its function is: in a non-PIE program, the address of an exported
# function is its PLT stub in the program (a function pointer must be unique).
LIBRARY = r"""
__attribute__((noinline)) static int lib_work(int x) { return x + 7; }
void *lib_where(void) { return (void *)lib_work; }
"""

needs_cc = pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler")


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("elf")
    (d / "prog.c").write_text(PROGRAM)
    (d / "lib.c").write_text(LIBRARY)
    cc = ["cc", "-O1", "-fno-omit-frame-pointer"]
    subprocess.run([*cc, "-shared", "-fPIC", "-o", str(d / "liber.so"), str(d / "lib.c")],
                   check=True)
    for name, flags in (("pie", ["-fPIE", "-pie"]), ("nopie", ["-fno-PIE", "-no-pie"])):
        subprocess.run([*cc, *flags, "-o", str(d / name), str(d / "prog.c"),
                        f"-L{d}", "-ler", f"-Wl,-rpath,{d}"], check=True)
        shutil.copy(d / name, d / f"{name}-stripped")
        subprocess.run(["strip", str(d / f"{name}-stripped")], check=True)
    return d


def _run(path: Path) -> Tuple[subprocess.Popen, Dict[str, int]]:
    proc = subprocess.Popen([str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None
    where = {}
    for _ in range(3):
        name, addr = proc.stdout.readline().split()
        where[name] = int(addr, 16)
    return proc, where


@pytest.fixture
def running(built) -> Iterator:
    started: List[subprocess.Popen] = []

    def start(name: str) -> Tuple[int, Dict[str, int]]:
        proc, where = _run(built / name)
        started.append(proc)
        return proc.pid, where

    yield start
    for proc in started:
        proc.kill()
        proc.wait()


@needs_cc
@pytest.mark.parametrize("name", ["pie", "nopie"])
def test_functions_of_a_program_and_its_library_resolve(running, name):
    pid, where = running(name)
    symbols = UserSymbols()
    assert symbols.capture(pid)
    alpha = symbols.frame(pid, where["er_alpha"] + 2)
    assert (alpha.name, alpha.offset, alpha.text) == ("er_alpha", 2, "er_alpha+2")
    assert alpha.module is not None and alpha.module.endswith(name)
    assert symbols.frame(pid, where["beta"]).text == "er_beta+0"  # a static function
    lib = symbols.frame(pid, where["lib_work"] + 1)
    assert lib.text == "lib_work+1" and lib.module is not None
    assert lib.module.endswith("liber.so")
    assert symbols.unresolved == 0


@needs_cc
def test_the_library_resolves_at_whatever_base_it_was_loaded(running):
    pid1, where1 = running("pie")
    pid2, where2 = running("pie")
    symbols = UserSymbols()
    # ASLR: two runs load the library (and the PIE) at different bases.
    assert where1["lib_work"] != where2["lib_work"]
    assert symbols.frame(pid1, where1["lib_work"]).text == "lib_work+0"
    assert symbols.frame(pid2, where2["lib_work"]).text == "lib_work+0"


@needs_cc
def test_a_stripped_program_keeps_only_its_exported_names(running):
    pid, where = running("pie-stripped")
    symbols = UserSymbols()
    beta = symbols.frame(pid, where["beta"])
    assert beta.name is None and beta.text == hex(where["beta"])  # printed, never dropped
    assert symbols.frame(pid, where["lib_work"]).text == "lib_work+0"  # the library's .dynsym
    assert symbols.unresolved == 1


@needs_cc
def test_frames_of_a_process_that_exited_resolve_from_its_capture(built):
    proc, where = _run(built / "pie")
    symbols = UserSymbols()
    assert symbols.capture(proc.pid)
    proc.kill()
    proc.wait()
    assert symbols.frame(proc.pid, where["er_alpha"]).text == "er_alpha+0"
    gone = UserSymbols()
    assert not gone.capture(proc.pid)
    assert gone.frame(proc.pid, where["er_alpha"]).text == hex(where["er_alpha"])


def test_a_damaged_or_hostile_file_has_no_symbols_and_raises_nothing(tmp_path, built):
    data = (built / "pie").read_bytes()
    for cut in (0, 4, 63):  # not even an ELF header
        (tmp_path / "cut").write_bytes(data[:cut])
        with open(tmp_path / "cut", "rb") as f:
            assert read_elf(f) is None
    rng = random.Random(7)
    for _ in range(150):  # flipped bytes anywhere in the headers and tables: no exception
        damaged = bytearray(data)
        for _ in range(4):
            damaged[rng.randrange(min(len(data), 4096))] ^= 1 << rng.randrange(8)
        (tmp_path / "flip").write_bytes(bytes(damaged))
        with open(tmp_path / "flip", "rb") as f:
            got = read_elf(f)
        assert got is None or isinstance(got, ElfSymbols)
    (tmp_path / "noise").write_bytes(b"\x7fELF" + bytes(range(256)) * 8)
    with open(tmp_path / "noise", "rb") as f:
        assert read_elf(f) is None


def test_maps_lines_keep_executable_mappings_only():
    text = ("55d0c0a00000-55d0c0a01000 r--p 00000000 08:01 12 /usr/bin/x\n"
            "55d0c0a01000-55d0c0a02000 r-xp 00001000 08:01 12 /usr/bin/x\n"
            "7ffd1000-7ffd3000 r-xp 00000000 00:00 0 [vdso]\n"
            "garbage line\n")
    maps = parse_maps(text)
    assert [(m.start, m.offset, m.path) for m in maps] == [
        (0x55D0C0A01000, 0x1000, "/usr/bin/x"), (0x7FFD1000, 0, "[vdso]")]
    assert maps[0].file_offset(0x55D0C0A01010) == 0x1010


def test_kernel_frames_use_bpftraces_form(tmp_path):
    kallsyms = tmp_path / "kallsyms"
    kallsyms.write_text("ffffffff81000000 T _stext\n"
                        "ffffffff81001000 T do_syscall_64\n"
                        "ffffffff81001000 t do_syscall_64_alias\n"
                        "ffffffff81002000 T ext4_read [ext4]\n"
                        "ffffffff81003000 T _etext\n")
    ks = KernelSymbols(kallsyms)
    assert ks.frame(0xFFFFFFFF81001071).text == "do_syscall_64+113"
    assert ks.frame(0xFFFFFFFF81002000) == Frame(0xFFFFFFFF81002000, "ext4_read", 0, "ext4",
                                                 kernel=True)
    assert ks.frame(0xFFFFFFFF80000000).text == "0xffffffff80000000"
    assert ks.resolve(0xFFFFFFFF81001071) == "do_syscall_64+0x71"  # the ksym decoder's form
