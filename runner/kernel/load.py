"""Compiling the rendered C with BCC (or taking the compiled program from the cache:
object_cache.py), and saying which spec element a compile error comes from: every
generated statement carries a comment naming its origin."""

from __future__ import annotations

import re
from typing import Any, Optional

from runner.errors import EnvironmentProblem, KernelError
from runner.kernel import object_cache
from runner.kernel.bcc import CapturedStderr, quiet_bpf_class
from runner.kernel.cached_bpf import cached_bpf
from runner.kernel.environment import HEADERS_FIX

ORIGIN_RE = re.compile(r"/\* (\S.*?\(line \d+\)[^*]*?)\s*(?::|\*/)")


# How many times this process ran clang: the tests' proof that a cache hit compiles nothing.
_compiles = 0


def compile_count() -> int:
    return _compiles


def compile_program(bcc: Any, c_source: str) -> Any:
    """The loaded BPF object (maps created, nothing attached), or a project error: from
    the compiled-program cache when it holds this program, else compiled (and stored)."""
    k = object_cache.key(bcc, c_source) if object_cache.enabled() else None
    if k is not None:
        obj = object_cache.load(k)
        if obj is not None:
            with CapturedStderr():  # libbpf's complaints: a failed hit only costs a compile
                try:
                    return cached_bpf(bcc, obj)
                except KernelError:
                    pass
    bpf = _compile(bcc, c_source)
    if k is not None:
        obj = object_cache.capture(bcc, bpf)
        if obj is not None:
            object_cache.store(k, obj)
    return bpf


def _compile(bcc: Any, c_source: str) -> Any:
    global _compiles
    _compiles += 1
    with CapturedStderr() as err:
        try:
            bpf = quiet_bpf_class(bcc)(text=c_source.encode())
        except Exception as e:  # BCC raises bare Exception for every failure
            failure: Optional[Exception] = e
        else:
            failure = None
    if failure is not None:
        raise load_error(c_source, failure, err.text) from None
    return bpf


def load_error(c_source: str, failure: Exception, stderr: str) -> Exception:
    text = str(failure)
    if "kernel headers" in text.lower() or "unable to find kernel" in text.lower():
        return EnvironmentProblem(f"{text.strip()}. {HEADERS_FIX}")
    errors = [ln for ln in stderr.splitlines() if " error: " in ln]
    if not errors:
        return KernelError(f"BCC could not load the program: {text.strip()}\n{stderr}")
    return KernelError("the generated C does not compile:\n" + "\n".join(
        explain_compile_error(c_source, ln) for ln in errors[:10]))


def explain_compile_error(c_source: str, line: str) -> str:
    """clang's `file:LINE:COL: error: ...` -> the generated line and its spec element."""
    m = re.match(r".*?:(\d+):(\d+): error: (.*)", line)
    if not m:
        return line
    num = int(m.group(1))
    lines = c_source.splitlines()
    code = lines[num - 1].strip() if 0 < num <= len(lines) else "?"
    origin = next((o.group(1) for ln in reversed(lines[:num])
                   if (o := ORIGIN_RE.search(ln))), "the generated prologue")
    return (f"  generated line {num}: {m.group(3)}\n      {code}\n"
            f"    from spec element: {origin}")
