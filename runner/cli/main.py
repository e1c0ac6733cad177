"""The command line. Parses flags, calls one stage function, maps errors to exit codes.

    ebpf-run SPEC [--json] [--duration S] [--count N]    run a spec
    ebpf-run validate SPEC...                             check specs and exit
    ebpf-run render SPEC [--out DIR]                      show or write the generated code
    ebpf-run doctor                                       check this machine

Exit codes: 0 success; 1 spec error; 2 usage; 3 environment or kernel error.
An unexpected internal error keeps its traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Callable, List, Optional

from runner.errors import EbpfRunError

COMMANDS = ("run", "validate", "render", "doctor")


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
                   help="stop after N events or messages")
    v = sub.add_parser("validate", help="check specs and exit")
    v.add_argument("specs", nargs="+", metavar="SPEC")
    d = sub.add_parser("render", help="print the generated C, Python and layout table")
    d.add_argument("spec")
    d.add_argument("--out", metavar="DIR", help="write SPEC.c and SPEC.py into DIR instead")
    d.add_argument("--arch", choices=("x86_64", "aarch64"),
                   help="render for this architecture (default: this machine's)")
    sub.add_parser("doctor", help="check what this machine offers ebpf-run")
    return p


def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
        return value

    return parse


def main(argv: Optional[List[str]] = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    if args_in and args_in[0] not in COMMANDS and not args_in[0].startswith("-"):
        args_in.insert(0, "run")
    args = _parser().parse_args(args_in)
    if args.command is None:
        _parser().print_usage(sys.stderr)
        print("ebpf-run: error: give a spec to run, or a command", file=sys.stderr)
        return 2
    try:
        return _dispatch(args)
    except EbpfRunError as e:
        print(_format_error(e), file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:
        # The reader went away (`ebpf-run ... | head`): not an error of ours.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


def _format_error(e: EbpfRunError) -> str:
    from runner.errors import SpecError

    text = str(e)
    if isinstance(e, SpecError):
        n = len(e.diagnostics)
        return f"{text}\n{n} error{'s' if n != 1 else ''}"
    return f"ebpf-run: error: {text}"


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "validate":
        from runner.cli.commands import validate

        return validate(args.specs)
    if args.command == "render":
        from runner.cli.commands import render

        return render(args.spec, args.out, args.arch)
    if args.command == "doctor":
        from runner.cli.doctor import doctor

        return doctor()
    from runner.runtime.run import Options, run_spec

    return run_spec(args.spec, Options(args.json, args.duration, args.count))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
