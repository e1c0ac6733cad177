"""Every kind of thing a spec names, each found through one registry (registry.py):
actions/ (one module per action kind), maps.py (map types), attach.py (attach options,
candidate kinds, contexts), builtins.py (built-in values). docs/extending.md says how to
add one."""
