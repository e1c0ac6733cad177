"""`ebpf-run serve`: two specs of our own in one process with one /metrics, each counting
the calls of a workload of ours (getppid, getpgid) with exact values under its spec label;
a third spec that cannot attach is reported with ebpf_run_spec_up 0 while the others run;
SIGHUP after an edit restarts the edited spec only; SIGTERM detaches everything."""

from __future__ import annotations

import os
import signal
import textwrap

import pytest
from getppid import Generator
from harness import READY_TIMEOUT, Run
from test_metrics import PROMETHEUS, free_port, get, prometheus_server, query, wait_until

N_PPID = 3000
N_PGID = 2000
N_PGID_AFTER = 1500

GETPGID = "import os, sys; sys.stdin.readline(); [os.getpgid(0) for _ in range({n})]"

SPEC = """\
name: serve-{syscall}
aggregations:
  calls:
    kind: count
    key: {{pid: u32}}
    metric: {{name: {syscall}_calls_total, help: "{syscall}() calls of the test's workload."}}
probes:
  enter:
    attach: {{tracepoint: "syscalls:sys_enter_{syscall}"}}
    do:
      - if: "pid == {pid}"
        then:
          - aggregate: {{map: calls, key: {{pid: pid}}}}
"""

# Its first probe attaches, its second cannot: the first must be detached again.
BROKEN = """\
name: serve-broken
probes:
  first:
    attach: {tracepoint: "syscalls:sys_enter_getppid"}
    do:
      - print: "never"
  enter:
    attach: {kprobe: ebpf_run_no_such_function}
    do:
      - print: "never"
"""


def write(path, text: str) -> str:
    path.write_text(textwrap.dedent(text))
    return str(path)


def serving(run: Run, times: int = 1) -> None:
    run.wait_for(lambda: sum("serving" in ln for ln in run.err) >= times, READY_TIMEOUT,
                 "serving")


def attached_by(pid: int) -> set:
    """The ids of the programs the process holds, from its program and link descriptors in
    /proc/PID/fdinfo (bpftool here shows no pids). A stopped or failed spec's Kernel.close
    detaches and closes both, so its programs leave this set."""
    ids = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") not in ("anon_inode:bpf_link",
                                                           "anon_inode:bpf-prog"):
                continue
            with open(f"/proc/{pid}/fdinfo/{fd}") as info:
                ids |= {int(ln.split()[1]) for ln in info if ln.startswith("prog_id:")}
        except OSError:  # closed meanwhile
            continue
    return ids


def test_two_specs_one_endpoint_a_failed_one_reported_and_sighup(tmp_path):
    ppid, pgid = Generator(N_PPID), Generator(N_PGID, GETPGID.format(n=N_PGID))
    later = Generator(N_PGID_AFTER, GETPGID.format(n=N_PGID_AFTER))
    write(tmp_path / "a.yaml", SPEC.format(syscall="getppid", pid=ppid.pid))
    edited = tmp_path / "b.yaml"
    write(edited, SPEC.format(syscall="getpgid", pid=pgid.pid))
    broken = tmp_path / "c.yaml"
    write(broken, BROKEN)
    # Another spec exporting getppid_calls_total: refused before it loads.
    write(tmp_path / "d.yaml", SPEC.format(syscall="getppid", pid=ppid.pid).replace(
        "name: serve-getppid", "name: serve-clash"))
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    ppid_line = f'getppid_calls_total{{pid="{ppid.pid}",spec="serve-getppid"}} {float(N_PPID)}'
    try:
        with Run("serve", str(tmp_path), "--metrics", f"127.0.0.1:{port}") as run:
            serving(run)
            ppid.go()
            pgid.go()
            pgid_line = (f'getpgid_calls_total{{pid="{pgid.pid}",spec="serve-getpgid"}} '
                         f'{float(N_PGID)}')
            text = wait_until(lambda: (t := get(url)) and ppid_line in t and pgid_line in t
                              and t, 30, "both counts on /metrics")
            assert 'ebpf_run_spec_up{spec="serve-broken"} 0.0' in text
            assert 'ebpf_run_spec_up{spec="serve-clash"} 0.0' in text
            assert 'ebpf_run_spec_up{spec="serve-getppid"} 1.0' in text
            assert 'ebpf_run_spec_up{spec="serve-getpgid"} 1.0' in text
            assert ('ebpf_run_probe_attached{how="tracepoint syscalls:sys_enter_getppid",'
                    'probe="enter",spec="serve-getppid"} 1.0') in text
            before = attached_by(run.proc.pid)
            assert len(before) == 2, before  # the two that run; the broken one's first detached,
            # the clashing one never loaded

            # Edit one spec (it now counts the later workload), remove the broken one.
            write(edited, SPEC.format(syscall="getpgid", pid=later.pid))
            broken.unlink()
            run.proc.send_signal(signal.SIGHUP)
            run.wait_for(lambda: sum("[serve-getpgid] ready" in ln for ln in run.err) == 2,
                         READY_TIMEOUT, "the edited spec restarted")
            later.go()
            later_line = (f'getpgid_calls_total{{pid="{later.pid}",spec="serve-getpgid"}} '
                          f'{float(N_PGID_AFTER)}')
            text = wait_until(lambda: (t := get(url)) and later_line in t and t, 30,
                              "the restarted spec's count")
            assert ppid_line in text  # unchanged: kept running with its count
            assert f'pid="{pgid.pid}"' not in text  # restarted from zero
            assert "serve-broken" not in text  # removed: neither up nor down
            after = attached_by(run.proc.pid)
            assert len(after) == 2 and len(before & after) == 1, (before, after)  # old one gone
            rc = run.stop(signal.SIGTERM)
    finally:
        for g in (ppid, pgid, later):
            g.end()
    assert rc == 0, run.err
    err = "\n".join(run.err)
    assert "Traceback" not in err
    assert "ebpf-run: [serve-broken] error: probe enter could not attach:" in err
    assert ("ebpf-run: [serve-clash] error: metric 'getppid_calls_total' is served already, "
            "by spec 'serve-getppid': one name, one spec") in err
    assert "ebpf-run: serving 2 specs (2 failed)" in err
    assert "ebpf-run: SIGHUP: reading the specs again" in err
    # the edited spec's first run, its second, and the unchanged one: a summary each
    assert sum("[serve-getpgid] summary:" in ln for ln in run.err) == 2, err
    assert sum("[serve-getppid] summary:" in ln for ln in run.err) == 1, err


def test_strict_makes_a_failed_spec_fatal_and_leaves_nothing_attached(tmp_path):
    write(tmp_path / "a.yaml", SPEC.format(syscall="getppid", pid=1))
    write(tmp_path / "c.yaml", BROKEN)
    with Run("serve", str(tmp_path), "--strict", "--metrics", f"127.0.0.1:{free_port()}") as run:
        rc = run.finish(READY_TIMEOUT)
    err = "\n".join(run.err)
    assert rc == 3, err
    assert "ebpf-run: [serve-broken] error: probe enter could not attach:" in err
    assert "ebpf-run: --strict: stopping every spec (serve-broken failed)" in err
    assert "[serve-getppid] summary:" in err  # it had started: detached, summarised
    assert "serving" not in err and "Traceback" not in err


@pytest.mark.host_only  # a real Prometheus server: the exposition is the same on every kernel
@pytest.mark.skipif(PROMETHEUS is None, reason="prometheus not installed")
def test_prometheus_scrapes_every_spec_of_one_agent(tmp_path):
    assert PROMETHEUS is not None
    ours = free_port()
    specs = tmp_path / "specs"
    specs.mkdir()
    ppid, pgid = Generator(N_PPID), Generator(N_PGID, GETPGID.format(n=N_PGID))
    write(specs / "a.yaml", SPEC.format(syscall="getppid", pid=ppid.pid))
    write(specs / "b.yaml", SPEC.format(syscall="getpgid", pid=pgid.pid))
    scrape = f"  - job_name: agent\n    static_configs: [{{targets: ['127.0.0.1:{ours}']}}]\n"
    try:
        with prometheus_server(tmp_path, scrape) as theirs, \
                Run("serve", str(specs), "--metrics", f"127.0.0.1:{ours}") as run:
            serving(run)
            ppid.go()
            pgid.go()
            for promql, n in (('getppid_calls_total{spec="serve-getppid",job="agent"}', N_PPID),
                              ('getpgid_calls_total{spec="serve-getpgid",job="agent"}', N_PGID),
                              ('sum(ebpf_run_spec_up{job="agent"})', 2)):
                wait_until(lambda q=promql, n=n: query(theirs, q) == n, 60,
                           f"Prometheus to hold {n} for {promql}")
            assert run.stop(signal.SIGTERM) == 0
    finally:
        for g in (ppid, pgid):
            g.end()
