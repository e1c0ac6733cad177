"""ebpf-run: a declarative, YAML-driven eBPF probe runner on BCC.

Stages, one subpackage each, imports pointing one way:
spec (YAML with locations, schema.json) -> check (meaning -> model) -> codegen (Jinja: BPF C
and ctypes) -> kernel (BCC: the only bcc import) -> runtime (poll, decode, count) -> output
(text / JSON lines). `cli` wires them; `kinds` holds the tables every stage looks kinds up in;
`support` has what belongs to no stage (cache, package files, hints, syscall tables).
"""

__version__ = "0.1.0"

# SIGINT and SIGTERM that came while the command started (runner/__main__.py holds them
# from its first line, with nothing to import first): the run takes them over as stop
# requests (runtime/signals.py), other commands as an interruption (cli/main.py).
EARLY_SIGNALS: list = []
