"""`ebpf-run serve SPEC_OR_DIR... --metrics HOST:PORT`: many specs in one process, one
/metrics (every spec's metrics labelled spec="NAME", through runtime/metrics.Served).

A thread per spec runs that spec's Runner loop and finish, the single-spec run's own code
(poll, dumps at intervals, aggregation ticks, loss reports, drain, summary), so nothing of
it is copied, and one spec's long dump or burst of events never delays another's: BCC's
polls are ctypes calls, which release the GIL while they wait. Everything else happens on
the main thread, one spec at a time: the check, compile, load and attach (a compile in this
process points fd 2 at a file while it runs, kernel/bcc.py, so two at once would mix), the
signals, and SIGHUP's re-read.

- A spec that fails to check, compile, load or attach is reported on stderr
  (`ebpf-run: [NAME] error: ...`) and as ebpf_run_spec_up{spec="NAME"} 0; what it attached
  is detached (Kernel.close); the others run on. With --strict any failure stops them all
  and the command exits 1 with nothing attached.
- SIGHUP re-reads the arguments (a directory is listed again): a spec whose file's bytes
  did not change keeps running with its counts; a changed one is stopped (its summary) and
  started again from zero; a removed one is stopped; a new one, or one that had failed, is
  started.
- --cgroup PATH filters every spec to that cgroup's tasks, in the kernel (one more compile
  parameter, as for a run); `--set` is a run's only (a name one spec declares, not all).
- SIGINT/SIGTERM stop every spec as they stop a run (detach, drain, summary), exit 0; a
  second one means "now" (dumps at exit cut short), as for a run.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Dict, List, Optional

from runner.errors import EbpfRunError, SpecError, UsageError, format_error, shown_name
from runner.runtime.options import Options
from runner.runtime.signals import EARLY, SIGNALS, Stop
from runner.runtime.streams import FdWriter
from runner.spec.source import read_spec
from runner.support.metric_names import MetricsError

WAIT_S = 0.1  # how often the main thread looks at signals and at the specs' threads


def spec_paths(args: List[str]) -> List[str]:
    """The files given, and every *.yaml of a directory given, in order, once each."""
    out: List[str] = []
    for arg in args:
        p = Path(arg)
        found = sorted(str(f) for f in p.glob("*.yaml")) if p.is_dir() else [arg]
        out.extend(f for f in found if f not in out)
    return out


@dataclass
class Running:
    """One spec being served."""

    path: str
    name: str
    digest: str
    runner: Any  # runtime.runner.Runner
    kernel: Any  # kernel.session.Kernel
    thread: threading.Thread = field(default_factory=threading.Thread)  # its loop's
    fds: List[int] = field(default_factory=list)  # its stdout and stderr writers' own
    error: Optional[BaseException] = None


class Agent:
    def __init__(self, args: List[str], options: Options, strict: bool = False):
        if not options.metrics:
            raise UsageError("serve needs --metrics HOST:PORT: it is for metrics")
        self.args = args
        self.options = replace(options, metrics=None)  # one server, the agent's, for all
        self.metrics = options.metrics
        self.web_config = options.metrics_web_config
        self.strict = strict
        self.running: Dict[str, Running] = {}  # path -> spec
        self.failed: Dict[str, str] = {}  # path -> the name it is reported down under
        self.stop = Stop()  # the agent's: SIGINT, SIGTERM, or a failure with --strict
        self.hup = False
        self.served: Any = None
        self.starting: Optional[Stop] = None  # the stop of the spec being loaded
        self.code = 0  # --strict: the exit code of the first failure

    # -- signals ---------------------------------------------------------------------------

    def _signal(self, signum: int, _frame: Any) -> None:
        if signum == signal.SIGHUP:
            self.hup = True
            return
        name = signal.Signals(signum).name
        self.stop.signals += 1
        self.stop.request(name)
        stops = [r.runner.stop for r in list(self.running.values())]
        for stop in stops + ([self.starting] if self.starting is not None else []):
            stop.signals += 1
            stop.request(name)

    # -- the command -----------------------------------------------------------------------

    def run(self) -> int:
        saved = {s: signal.getsignal(s) for s in (*SIGNALS, signal.SIGHUP)}
        for s in saved:
            signal.signal(s, self._signal)
        while EARLY:
            self._signal(EARLY.pop(0), None)
        try:
            return self._serve()
        finally:
            try:
                self._stop_all(self.stop.reason or "stop")
            finally:
                if self.served is not None:
                    self.served.stop()
                for s in saved:  # the last milliseconds: a late signal changes nothing
                    signal.signal(s, signal.SIG_IGN)

    def _serve(self) -> int:
        from runner.output.prometheus_server import listen
        from runner.runtime.metrics import Served

        listener = listen(self.metrics, self.web_config)  # a port in use: before any compile
        self.served = Served(self.metrics, listener, many=True)
        self._reload()
        if self.stop.requested:
            return self.code
        port = self.served.start()
        _say(f"serving {len(self.running)} spec{'s' if len(self.running) != 1 else ''}"
             f" ({len(self.failed)} failed) on port {port} (/metrics)")
        exposure = listener.exposure()
        if exposure:
            _say(exposure)
        while not self.stop.requested:
            time.sleep(WAIT_S)
            if self.hup:
                self.hup = False
                _say("SIGHUP: reading the specs again")
                self._reload()
            self._reap()
        return self.code

    # -- starting and stopping specs -------------------------------------------------------

    def _reload(self) -> None:
        """Start what is new, changed or failed; stop what changed or is gone."""
        paths = spec_paths(self.args)
        digests = {p: _digest(p) for p in paths}
        for path, r in list(self.running.items()):
            if digests.get(path) != r.digest:
                self._stop_one(r, "SIGHUP")
        for path in [p for p in self.failed if p not in digests]:
            self.served.remove(self.failed.pop(path))
        for path in paths:
            if self.stop.requested:
                return
            if path not in self.running:
                self._start(path, digests[path])

    def _start(self, path: str, digest: str) -> None:
        from runner.pipeline import compile_spec

        name = Path(path).stem  # until the spec is read: its own name
        try:
            compiled = compile_spec(path, params=self.options.params)  # --cgroup: all
            name = compiled.spec.name
            self._start_compiled(path, digest, compiled)
        except (EbpfRunError, MetricsError) as e:  # MetricsError: a name another spec serves
            self._failed(path, name, e)

    def _start_compiled(self, path: str, digest: str, compiled: Any) -> None:
        from runner.kernel.session import Kernel
        from runner.output.spec_sinks import spec_sink
        from runner.runtime.metrics import runner_status
        from runner.runtime.run import fd_writer
        from runner.runtime.runner import Runner

        spec = compiled.spec
        name = spec.name
        other = next((r.path for r in self.running.values() if r.name == name), None)
        if other is not None:
            raise UsageError(f"{path}: spec name {name!r} is served already, from {other}")
        self.served.refuse_clash(spec)  # before anything is loaded
        stop = Stop()
        out, err = fd_writer(sys.stdout, stop), fd_writer(sys.stderr, stop)
        sink = spec_sink(self.options.json, name, out, err)  # type: ignore[arg-type]
        runner = Runner(spec, compiled.rendered.c, compiled.rendered.python, self.options,
                        sink, stop)
        writers = [w for w in (out, err) if isinstance(w, FdWriter)]
        for w in writers:
            w.on_wait = runner.check_stop
        k = Kernel(spec, compiled.rendered.c, fallbacks=self.options.fallbacks)
        self.starting = stop
        try:
            if self.stop.requested:
                stop.request(self.stop.reason or "stop")
            started = runner.start(k)
            if started is None:  # a stop came while it loaded
                k.close()
                _close([w.fd for w in writers])
                return
            self.failed.pop(path, None)
            self.served.add_kernel(spec, runner.types, k, lambda: runner_status(
                runner.records.received, runner.losses.reported, runner.attached,
                lambda: runner.aggs.evicted))
        except BaseException:
            runner.kernel = None
            k.close()  # detaches whatever attached
            _close([w.fd for w in writers])
            raise
        finally:
            self.starting = None
        r = Running(path, name, digest, runner, k, fds=[w.fd for w in writers])
        self.running[path] = r
        r.thread = threading.Thread(target=self._loop, args=(r, started),
                                    name=f"spec {name}", daemon=True)
        r.thread.start()

    def _loop(self, r: Running, started: float) -> None:
        try:
            r.runner.run_started(r.kernel, started)
        except BaseException as e:  # reported by the main thread (_reap)
            r.error = e
        finally:
            r.kernel.close()

    def _failed(self, path: str, name: str, e: BaseException) -> None:
        text = format_error(e) if isinstance(e, EbpfRunError) else f"error: {e}"
        text = text.removeprefix("ebpf-run: ")
        if any(r.name == name for r in self.running.values()):
            name = path  # a second spec of a running one's name: its down is its own
        _say(f"[{shown_name(name)}] {text}")
        self.failed[path] = name
        self.served.remove(name, down=True)
        if self.strict:
            _say(f"--strict: stopping every spec ({shown_name(name)} failed)")
            self.code = e.exit_code if isinstance(e, EbpfRunError) else 1
            self.stop.fail(e)

    def _reap(self) -> None:
        """Specs whose thread ended on its own (an error): reported down."""
        if self.stop.requested:  # they are stopping: not a failure
            return
        for path, r in list(self.running.items()):
            if not r.thread.is_alive():
                del self.running[path]
                self.served.remove(r.name)
                _close(r.fds)
                self._failed(path, r.name, r.error or RuntimeError("stopped"))

    def _stop_one(self, r: Running, reason: str) -> None:
        r.runner.stop.request(reason)
        r.thread.join()
        self.running.pop(r.path, None)
        self.served.remove(r.name)
        _close(r.fds)
        if r.error is not None:
            _say(f"[{shown_name(r.name)}] error while stopping: {r.error}")

    def _stop_all(self, reason: str) -> None:
        for r in list(self.running.values()):  # all asked first: they stop side by side
            r.runner.stop.request(reason)
        for r in list(self.running.values()):
            self._stop_one(r, reason)


def _close(fds: List[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def _digest(path: str) -> str:
    """The file's digest, read as a spec is (bounded; a FIFO or a device is refused, never
    waited on: a FIFO named x.yaml hung serve for good, deaf to signals); its check then
    reports why it cannot be one."""
    try:
        return hashlib.sha256(read_spec(path)).hexdigest()
    except SpecError as e:
        return f"unreadable: {e}"


def _say(text: str) -> None:
    sys.stderr.write(f"ebpf-run: {text}\n")
    sys.stderr.flush()


def serve(args: List[str], options: Options, strict: bool = False) -> int:
    if not spec_paths(args):
        raise UsageError(f"serve: no spec in {' '.join(args)} (files, or directories of "
                         "*.yaml)")
    return Agent(args, options, strict).run()
