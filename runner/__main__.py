"""`python -m runner` and the `ebpf-run` console script."""

import sys


def entry() -> int:
    try:
        from runner.cli.main import main

        return main()
    except KeyboardInterrupt:
        # Ctrl-C before ebpf-run's own handler is in place: nothing is loaded yet.
        return 130


if __name__ == "__main__":
    sys.exit(entry())
