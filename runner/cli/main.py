"""The command line. Parses flags, calls one stage function, maps errors to exit codes.

    ebpf-run SPEC [--json] [--duration S] [--count N]    run a spec
    ebpf-run serve SPEC_OR_DIR... --metrics HOST:PORT     many specs, one /metrics
    ebpf-run validate SPEC...                             check specs and exit
    ebpf-run render SPEC [--out DIR]                      show or write the generated code
    ebpf-run doctor                                       check this machine
    ebpf-run list [PATTERN] [-v] [--json]                 probes this machine offers
    ebpf-run test SPEC... [--json]                        run the specs' own test cases

Exit codes: 0 success (also when stdout's reader went away, `| head -1`); 1 spec error;
2 usage; 3 environment or kernel error, including output that cannot be written (a full
disk, /dev/full, a bad --out directory). An unexpected internal error keeps its traceback.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from typing import Any, Callable, Dict, List, Optional, Tuple

from runner.errors import EbpfRunError, format_error
from runner.output.stdout import private_stdout

Handler = Callable[[argparse.Namespace], int]


def _run(args: argparse.Namespace) -> int:
    from runner.runtime.run import Options, run_spec

    if args.metrics:  # refused before the compile, not once the probes are attached
        from runner.output.prometheus_server import parse_listen

        parse_listen(args.metrics)
    elif args.metrics_web_config:
        from runner.errors import UsageError

        raise UsageError("--metrics-web-config protects --metrics: give --metrics HOST:PORT")
    from runner.support.fallbacks import Fallbacks

    return run_spec(args.spec, Options(args.json, args.duration, args.count, _params(args),
                                       args.metrics, args.metrics_web_config,
                                       Fallbacks.from_environment(), args.folded,
                                       args.flamegraph))


def _serve(args: argparse.Namespace) -> int:
    from runner.output.prometheus_server import parse_listen
    from runner.runtime.options import Options
    from runner.runtime.serve import serve

    parse_listen(args.metrics)  # refused before anything is compiled
    return serve(args.specs, Options(args.json, params=_cgroup_param(args),
                                     metrics=args.metrics,
                                     metrics_web_config=args.metrics_web_config),
                 strict=args.strict)


def _validate(args: argparse.Namespace) -> int:
    from runner.cli.commands import validate

    return validate(args.specs)


def _render(args: argparse.Namespace) -> int:
    from runner.cli.commands import render

    return render(args.spec, args.out, args.arch, _params(args))


def _doctor(args: argparse.Namespace) -> int:
    from runner.cli.doctor import doctor

    return doctor()


def _list(args: argparse.Namespace) -> int:
    from runner.cli.list import main as list_main

    return list_main(args)


def _test(args: argparse.Namespace) -> int:
    from runner.cli.test import test

    return test(args.specs, args.json)


# Each command's handler; its flags are declared in _parser().
HANDLERS: Dict[str, Handler] = {
    "run": _run,
    "serve": _serve,
    "validate": _validate,
    "render": _render,
    "doctor": _doctor,
    "list": _list,
    "test": _test,
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ebpf-run",
        description="Run a declarative eBPF spec: one YAML file renders the BPF C and the "
                    "Python view of its data. `ebpf-run SPEC` is `ebpf-run run SPEC`.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    r = sub.add_parser("run", help="run a spec (the default command)")
    r.add_argument("spec")
    r.add_argument("--json", action="store_true", help="print JSON lines, one record each")
    r.add_argument("--duration", type=_positive(float), metavar="SECONDS",
                   help="stop after this many seconds")
    r.add_argument("--count", type=_positive(int), metavar="N",
                   help="stop after printing N events or messages (what the probes sent "
                        "after them is counted in the summary, not printed)")
    _add_set(r)
    r.add_argument("--metrics", metavar="HOST:PORT",
                   help="serve Prometheus metrics on http://HOST:PORT/metrics while running "
                        "(127.0.0.1 keeps it on this machine)")
    r.add_argument("--metrics-web-config", metavar="FILE",
                   help="TLS and basic auth for --metrics, in Prometheus' exporter-toolkit "
                        "web config format (docs/spec.md)")
    r.add_argument("--folded", metavar="FILE",
                   help="at the end, write the count and sum aggregations keyed by kstack or "
                        "ustack as folded stacks (comm;outer;...;inner count)")
    r.add_argument("--flamegraph", metavar="FILE",
                   help="at the end, write them as a self-contained SVG flame graph")
    s = sub.add_parser("serve", help="run many specs in one process, with one /metrics")
    s.add_argument("specs", nargs="+", metavar="SPEC_OR_DIR",
                   help="spec files, or directories whose *.yaml are all served")
    s.add_argument("--metrics", metavar="HOST:PORT", required=True,
                   help="serve every spec's metrics on http://HOST:PORT/metrics, each "
                        "labelled spec=\"NAME\"")
    s.add_argument("--metrics-web-config", metavar="FILE",
                   help="TLS and basic auth for --metrics (as for run)")
    s.add_argument("--json", action="store_true",
                   help="print every record as a JSON line with a \"spec\" field (without "
                        "it events are counted, not printed)")
    s.add_argument("--cgroup", metavar="PATH",
                   help="every spec sees only the tasks in this cgroup v2 and below it, "
                        "filtered in the kernel (as for run)")
    s.add_argument("--strict", action="store_true",
                   help="any spec that fails to check, load or attach stops them all "
                        "(exit non-zero, nothing left attached)")
    v = sub.add_parser("validate", help="check specs and exit")
    v.add_argument("specs", nargs="+", metavar="SPEC")
    d = sub.add_parser("render", help="print the generated C, Python and layout table")
    d.add_argument("spec")
    d.add_argument("--out", metavar="DIR", help="write SPEC.c and SPEC.py into DIR instead "
                   "(as new files renamed into place: a link there is replaced, not followed)")
    d.add_argument("--arch", choices=("x86_64", "aarch64"),
                   help="render for this architecture (default: this machine's)")
    _add_set(d)
    sub.add_parser("doctor", help="check what this machine offers ebpf-run")
    t = sub.add_parser("test", help="run the test cases in the specs' `tests:` sections")
    t.add_argument("specs", nargs="+", metavar="SPEC")
    t.add_argument("--json", action="store_true", help="print typed JSON records")
    from runner.cli.list import add_parser as add_list

    add_list(sub)
    return p


def _add_set(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", type=_assignment, action="append", default=[],
                   metavar="NAME=VALUE", help="set a parameter the spec declares (repeatable)")
    p.add_argument("--cgroup", metavar="PATH",
                   help="only the tasks in this cgroup v2 and below it, filtered in the kernel "
                        "(a path under the v2 root, /system.slice/cron.service, or its "
                        "directory under the mount)")


def _params(args: argparse.Namespace) -> Tuple[Tuple[str, str], ...]:
    """The --set pairs, and --cgroup PATH resolved to its id and level as one more pair
    (support/cgroups.py): the rendered program holds them as constants. A PATH that names
    no cgroup v2 is a usage error, before anything is compiled or attached."""
    return (*args.set, *_cgroup_param(args))


def _cgroup_param(args: argparse.Namespace) -> Tuple[Tuple[str, str], ...]:
    """--cgroup PATH as the one pair that carries it, or nothing without it."""
    if args.cgroup is None:
        return ()
    from runner.errors import UsageError
    from runner.support.cgroups import CgroupError, filter_param, require_v2_mount, resolve

    try:
        return (filter_param(resolve(args.cgroup, require_v2_mount())),)
    except CgroupError as e:
        raise UsageError(str(e)) from None


def _assignment(text: str) -> Tuple[str, str]:
    name, eq, value = text.partition("=")
    # A NAME never starts with "-": the pair that carries --cgroup (_params) is named so.
    if not eq or not name or name.startswith("-"):
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, not {text!r}")
    return name, value


def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    """A finite number above zero: `nan` compares false with everything and `inf` never
    arrives, so either would make a run that never stops."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number: {text!r}")
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
        return value

    return parse


def main(argv: Optional[List[str]] = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    if args_in and args_in[0] not in HANDLERS and not args_in[0].startswith("-"):
        args_in.insert(0, "run")
    args = _parser().parse_args(args_in)
    if args.command is None:
        _parser().print_usage(sys.stderr)
        print("ebpf-run: error: give a spec to run, or a command", file=sys.stderr)
        return 2
    if args.command not in ("run", "serve") and _held_signals():
        return 130  # interrupted before it began: nothing was done
    with private_stdout():
        return _command(HANDLERS[args.command], args)


def _held_signals() -> bool:
    """Whether a signal came while runner/__main__.py held them; the run command takes held
    signals over as stop requests instead (runtime/signals.py)."""
    from runner.runtime.signals import release_early_signals

    return release_early_signals()


def _command(handler: Handler, args: argparse.Namespace) -> int:
    try:
        code = handler(args)
        # What is still buffered must reach its file before the command claims success.
        sys.stdout.flush()
        return code
    except EbpfRunError as e:
        print(format_error(e), file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:
        # The reader went away (`ebpf-run ... | head`): not an error of ours.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
