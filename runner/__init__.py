"""ebpf-run: a declarative, YAML-driven eBPF probe runner on BCC.

Stages, one module each, imports pointing one way:
loader (YAML with locations) -> schema (schema.json) -> build (meaning, model)
-> render (Jinja: BPF C and ctypes) -> kernel (BCC: the only bcc import)
-> run (poll, decode, print) -> output (text / JSON lines).
"""

__version__ = "0.1.0"
