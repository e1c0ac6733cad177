"""`ebpf-run test`: run the cases of a spec's `tests:` section and match what the run printed.

cases.py loads the specs' cases, triggers.py runs a trigger and takes its captures,
expectations.py matches JSON records (pure; no kernel), session.py runs one case against a
child `ebpf-run SPEC --json`, requirements.py answers a case's `requires:`, and report.py
prints the result lines and the summary. containment.py keeps what a trigger starts inside
its case (a cgroup and a process group, killed at its end), and regexes.py bounds the time
of a regex search.
"""
