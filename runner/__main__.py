"""`python -m runner` and the `ebpf-run` console script."""

# First of all, before any import that takes time: from here on SIGINT and SIGTERM are
# recorded, not fatal (runtime/early.py; what comes before this line cannot be caught).
from runner.runtime.early import hold_signals

hold_signals()

import os  # noqa: E402  (after the line above on purpose)
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
