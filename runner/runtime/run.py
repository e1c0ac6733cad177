"""`ebpf-run SPEC`: the run command's stage function, plus the names the CLI and the
tests import from here (Options, Runner, run_spec).

The SIGINT/SIGTERM handlers go in before the spec is even compiled, so a signal at any
moment from here on ends the run the same way (see signals.py). Output goes through
streams.FdWriter rather than sys.stdout (see there for why).
"""

from __future__ import annotations

import io
import math
import os
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any, Optional, TextIO, Union

from runner.errors import UsageError
from runner.runtime.options import Options
from runner.runtime.signals import SIGNALS, Stop, handle_signals
from runner.runtime.streams import FdWriter

if TYPE_CHECKING:
    from runner.kernel.compiler import Compiler
    from runner.kernel.load import Loading
    from runner.output.prometheus_server import Listener


def run_spec(path: str, options: Options) -> int:
    if options.duration is not None and not math.isfinite(options.duration):
        # nan compares false with every time, so the run would never stop.
        raise UsageError(f"--duration must be a finite number of seconds, not {options.duration}")
    stop = Stop()
    early = _EarlyLoad()
    listener: Optional[Listener] = None
    try:
        with handle_signals(stop):
            # Imported here, after the handlers: they take a good part of the start-up,
            # and a signal during them must be a stop like any other.
            listener = _listen(options)  # a port in use fails before the compile
            for stream in (sys.stdout, sys.stderr):
                # What Python itself still prints (errors after the run) escaped, not failed.
                if isinstance(stream, io.TextIOWrapper):
                    stream.reconfigure(errors="backslashreplace")
            # Before the compile begins: a compile in a thread points fd 2 at a file.
            out, err = fd_writer(sys.stdout, stop), fd_writer(sys.stderr, stop)
            from runner.pipeline import compile_spec

            compiled = compile_spec(path, params=options.params, on_miss=early.fork_compiler,
                                    on_hit=early.preload)
            from runner.runtime import stack_files

            stack_files.check(compiled.spec, options)  # before anything is loaded
            loading = early.begin(compiled.rendered.c, stop)
            # Imported while the program compiles (in the child, or in a thread).
            from runner.output.registry import sink_for
            from runner.runtime.runner import Runner

            sink = sink_for("json" if options.json else "text", out, err)  # type: ignore[arg-type]
            runner = Runner(compiled.spec, compiled.rendered.c, compiled.rendered.python,
                            options, sink, stop, loading, listener)
            for w in (out, err):
                if isinstance(w, FdWriter):
                    w.on_wait = runner.check_stop
            rc = runner.run()
            if isinstance(out, FdWriter) and out.dropped:
                sink.note(f"stdout took nothing for {out.stall_s:.0f} s after the stop: the "
                          f"last {out.dropped} bytes of output were dropped")
            return rc
    finally:
        early.release()
        if listener is not None:
            listener.close()  # served: closed already; a second close does nothing
        # The command is ending and everything is released. Ignore further Ctrl-C / SIGTERM
        # for the milliseconds left: Python's default handler would turn a late one into a
        # KeyboardInterrupt traceback or a death by signal instead of the exit code.
        for s in SIGNALS:
            signal.signal(s, signal.SIG_IGN)


def _listen(options: Options) -> Optional[Listener]:
    if not options.metrics:
        return None
    from runner.output.prometheus_server import listen

    return listen(options.metrics, options.metrics_web_config)


class _EarlyLoad:
    """The program's load, begun as early as it can be. When the render cache misses, a
    compiler child is forked (kernel/compiler.py) and sent the C as soon as it is rendered;
    when it holds the spec, libbcc is loaded beside reading it back (kernel/bcc.py)."""

    def __init__(self) -> None:
        self.compiler: Optional[Compiler] = None
        self.loading: Optional[Loading] = None
        self._preload: Optional[threading.Thread] = None

    def preload(self) -> None:
        from runner.kernel.bcc import preload_libbcc

        self._preload = preload_libbcc()

    def fork_compiler(self) -> None:
        from runner.kernel.compiler import fork

        if self._preload is not None:  # a hit that did not read back: never fork mid-dlopen
            self._preload.join()
        self.compiler = fork()

    def begin(self, c_source: str, stop: Stop) -> Optional[Loading]:
        if self.compiler is not None and not self.compiler.send(c_source):
            self.compiler = None  # ended: this program is compiled in-process
        from runner.kernel.load import begin  # imported while the child compiles

        if not stop.requested:
            self.loading = begin(c_source, self.compiler)
        return self.loading

    def release(self) -> None:
        """What a failure or a stop left before the run took the program (no-ops after)."""
        if self.loading is not None:
            self.loading.discard()
        if self.compiler is not None:
            self.compiler.close()


def __getattr__(name: str) -> Any:
    """Runner, for the tests that import it from here, without loading it at import."""
    if name == "Runner":
        from runner.runtime.runner import Runner

        return Runner
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def fd_writer(stream: TextIO, stop: Stop) -> Union[FdWriter, TextIO]:
    """The stream's file descriptor behind an FdWriter; the stream itself when it has none
    (a test's capture)."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        return stream
    stream.flush()  # what Python printed before goes first
    # A format like {x:c} can make text no encoding carries (a lone surrogate): FdWriter
    # prints it escaped rather than fail mid-run.
    try:
        # A descriptor of our own: a compile in a thread points fd 2 at a file while it
        # runs (kernel/bcc.py, CapturedStderr), and a note or summary written through
        # fd 2 then went into that file with clang's words, lost. Made before that.
        fd = os.dup(fd)
        return FdWriter(fd, getattr(stream, "encoding", None) or "utf-8", stop)
    except OSError:  # a closed descriptor: let the stream report it as it would have
        return stream
