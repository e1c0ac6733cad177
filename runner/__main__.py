"""`python -m runner` is the `ebpf-run` command."""

import sys

from .cli import main

sys.exit(main())
