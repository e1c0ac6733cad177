"""`python -m runner` and the `ebpf-run` console script."""

import os
import sys


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
        # First of all: from here on a signal is recorded, not fatal (runtime/signals.py).
        from runner.runtime.signals import hold_early_signals

        hold_early_signals()
        _standard_descriptors()
        from runner.cli.main import main

        return main()
    except KeyboardInterrupt:
        # Ctrl-C before the signals were held (the import just above), or in a command
        # other than run: nothing is loaded.
        return 130


if __name__ == "__main__":
    sys.exit(entry())
