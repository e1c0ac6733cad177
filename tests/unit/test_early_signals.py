"""SIGINT and SIGTERM are held from the command's first line, before any import that
takes time (runner/__main__.py: nothing is imported before the handlers are in).

Before, the handlers were installed by entry() after importing `signal` (which imports
enum and typing: about 40 ms), and a signal then killed the process (SIGTERM, 143 in a
shell) or ended it with a silent 130 or a KeyboardInterrupt traceback. What comes before
our first line (the interpreter's own start-up) is documented in the README.
"""

from __future__ import annotations

import subprocess
import sys

from .util import ROOT

# In a fresh interpreter: record every module imported while SIGINT or SIGTERM still has
# its default handling, then start the command as the console script does.
PROBE = """
import sys, _signal
held = lambda: all(_signal.getsignal(s) not in (_signal.SIG_DFL, _signal.default_int_handler)
                   for s in (_signal.SIGINT, _signal.SIGTERM))
before = []
class Watch:
    def find_spec(self, name, path=None, target=None):
        if not held():
            before.append(name)
        return None
sys.meta_path.insert(0, Watch())
sys.argv = ["ebpf-run", "--version"]
try:
    from runner.__main__ import entry
    entry()
except SystemExit:
    pass
print(" ".join(before))
"""


def test_signals_are_held_before_anything_heavy_is_imported():
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    imported_first = out.stdout.split()
    assert imported_first == ["runner", "runner.__main__"], imported_first
