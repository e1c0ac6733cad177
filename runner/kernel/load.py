"""Compiling the rendered C with BCC (or taking the compiled program from the cache:
object_cache.py), and saying which spec element a compile error comes from: every
generated statement carries a comment naming its origin.

A compile runs outside the caller's thread, begun as soon as the C exists: in the compiler
child forked early (compiler.py) when the caller made one, else in a thread of its own
(kallsyms_view.py). `begin` returns at once, the caller imports the rest of ebpf-run
meanwhile, then waits in Loading.result()."""

from __future__ import annotations

import re
from typing import Any, Callable, Optional, Tuple

from runner.errors import EnvironmentProblem, KernelError
from runner.kernel import object_cache
from runner.kernel.bcc import CapturedStderr, check_privileges, import_bcc, quiet_bpf_class
from runner.kernel.cached_bpf import cached_bpf
from runner.kernel.compiler import ERROR, OBJECT, STOPPED, Compiler
from runner.kernel.environment import HEADERS_FIX, check_headers
from runner.kernel.kallsyms_view import Pending

ORIGIN_RE = re.compile(r"/\* (\S.*?\(line \d+\)[^*]*?)\s*(?::|\*/)")


# How many times this process ran clang: the tests' proof that a cache hit compiles nothing.
_compiles = 0


def compile_count() -> int:
    return _compiles


def begin(c_source: str, compiler: Optional[Compiler] = None) -> Loading:
    """Start loading the program after checking what a load needs: a cache hit is loaded
    at once, a compile goes on in `compiler` (a child forked early, which the caller has
    sent `c_source`: compiler.py) or in a thread of its own. The caller can do Python
    work until it asks Loading.result()."""
    check_privileges()
    bcc = import_bcc()
    check_headers()
    return Loading(bcc, c_source, compiler)


def compile_program(bcc: Any, c_source: str) -> Any:
    """The loaded BPF object (maps created, nothing attached), or a project error: from
    the compiled-program cache when it holds this program, else compiled (and stored)."""
    return Loading(bcc, c_source).result()


class Loading:
    """One program's load: from the cache, from a compiler child's answer, or from a
    compile running in a thread of its own."""

    def __init__(self, bcc: Any, c_source: str, compiler: Optional[Compiler] = None):
        global _compiles
        self.bcc, self._c_source = bcc, c_source
        self._taken = False
        self._key = object_cache.key(bcc, c_source) if object_cache.enabled() else None
        self._compiler: Optional[Compiler] = None
        self._compiling: Optional[Pending[Tuple[Any, Optional[Exception], str]]] = None
        self._bpf = self._from_cache()
        if self._bpf is not None:
            if compiler is not None:
                compiler.close()
            return
        _compiles += 1
        self._compiler = compiler
        if compiler is None:
            self._compiling = Pending(self._compile)

    def result(self, should_stop: Callable[[], bool] = lambda: False) -> Any:
        """The BPF object (maps created, nothing attached), or a project error; None if
        `should_stop()` turned true while a compiler child was still compiling (the child
        is then ended). The caller owns the object from here: releasing it is theirs."""
        self._taken = True
        return self._finish(should_stop)

    def discard(self) -> None:
        """Release what was loaded unless a caller took it: a stop or a failure came
        before the program was used (a compile still running is waited for; a compiler
        child is ended)."""
        if self._taken:
            return
        self._taken = True
        if self._compiler is not None:
            self._compiler.close()
            self._compiler = None
        try:
            bpf = self._finish()
        except Exception:  # a failed compile left nothing to release
            return
        if bpf is not None:
            bpf.cleanup()

    def _finish(self, should_stop: Callable[[], bool] = lambda: False) -> Any:
        if self._compiler is not None:
            compiler, self._compiler = self._compiler, None
            kind, answer = compiler.receive(should_stop)
            if kind == STOPPED:
                return None
            self._bpf = self._from_child(kind, answer)
            if self._bpf is None:  # no help from the child: compile here, as before
                self._compiling = Pending(self._compile)
        if self._compiling is not None:
            compiling, self._compiling = self._compiling, None
            bpf, failure, stderr = compiling.result()
            if failure is not None:
                raise load_error(self._c_source, failure, stderr) from None
            self._bpf = bpf
            self._store(object_cache.capture(self.bcc, bpf))
        return self._bpf

    def _from_child(self, kind: str, answer: Any) -> Any:
        if kind == ERROR:
            message, stderr = answer
            raise load_error(self._c_source, Exception(message), stderr)
        if kind != OBJECT:
            return None
        bpf = self._load(answer)
        if bpf is not None:
            self._store(answer)
        return bpf

    def _from_cache(self) -> Any:
        obj = object_cache.load(self._key) if self._key is not None else None
        return None if obj is None else self._load(obj)

    def _load(self, obj: object_cache.CompiledObject) -> Any:
        """The BPF object made from compiled instructions, or None if that failed."""
        with CapturedStderr():  # libbpf's complaints: a failure only costs a compile
            try:
                return cached_bpf(self.bcc, obj)
            except KernelError:
                return None

    def _compile(self) -> Tuple[Any, Optional[Exception], str]:
        """In the compile's own thread: BCC's object, or what it raised and printed."""
        bpf, failure = None, None
        with CapturedStderr() as err:
            try:
                bpf = quiet_bpf_class(self.bcc)(text=self._c_source.encode())
            except Exception as e:  # BCC raises bare Exception for every failure
                failure = e
        return bpf, failure, err.text

    def _store(self, obj: Optional[object_cache.CompiledObject]) -> None:
        if self._key is not None and obj is not None:
            object_cache.store(self._key, obj)


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
