"""`python -m runner` and the `ebpf-run` console script."""

# First of all, before anything that takes time: from here on SIGINT and SIGTERM are only
# recorded, never fatal. `_signal` is the interpreter's own (loaded at its start); the
# `signal` module would import enum and typing first, 40 ms in which SIGTERM killed the
# process and SIGINT interrupted an import. What comes before this line (the interpreter's
# own start-up) cannot be caught: the README says what it looks like.
import _signal

from runner import EARLY_SIGNALS


def _hold(signum: int, _frame: object) -> None:
    EARLY_SIGNALS.append(signum)


_signal.signal(_signal.SIGINT, _hold)
_signal.signal(_signal.SIGTERM, _hold)

import os  # noqa: E402  (after the lines above on purpose)
import sys  # noqa: E402


def _standard_descriptors() -> None:
    """Closed standard descriptors (`ebpf-run ... >&-`) are reopened on /dev/null.

    Otherwise the first file the process opens (a BPF map, a perf event) would take
    descriptor 1 or 2, and text meant for the terminal would be written into it. What goes
    to a closed stdout is discarded, as when its reader goes away (`| head -1`).
    """
    for fd, mode, name in ((0, os.O_RDONLY, "stdin"), (1, os.O_WRONLY, "stdout"),
                           (2, os.O_WRONLY, "stderr")):
        try:
            os.fstat(fd)
            continue
        except OSError:
            pass
        null = os.open(os.devnull, mode)
        if null != fd:
            os.dup2(null, fd)
            os.close(null)
        if getattr(sys, name) is None:  # Python found it closed at start-up
            # Kept open for the life of the process, as Python keeps its own streams.
            setattr(sys, name, open(fd, "r" if fd == 0 else "w", closefd=False))  # noqa: SIM115


def entry() -> int:
    try:
        _standard_descriptors()
        from runner.cli.main import main

        return main()
    except KeyboardInterrupt:
        # Ctrl-C in a command other than run (they restore Python's handler): nothing is
        # loaded.
        return 130


if __name__ == "__main__":
    sys.exit(entry())
