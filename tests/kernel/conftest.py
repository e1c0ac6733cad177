import os
import time

import pytest
from harness import ebpf_run_programs


def pytest_collection_modifyitems(config, items):
    for item in items:
        item.add_marker(pytest.mark.kernel)
    if os.environ.get("EBPF_RUN_VM") == "1":
        # The second-kernel VM emulates its CPU (a compile takes ~10 s there): it runs the
        # tests where the kernel matters. Tests marked host_only check what is the same
        # on every kernel (output escaping, bpftrace side by side, Prometheus, listing); the
        # tools still run there, through their own cases (test_spec_tests.py).
        kept = [i for i in items if not i.get_closest_marker("host_only")]
        config.hook.pytest_deselected(items=[i for i in items if i not in kept])
        items[:] = kept


@pytest.fixture(autouse=True)
def nothing_left_behind():
    """Every kernel test ends with no program of ebpf-run's left in the kernel."""
    yield
    # EBPF_RUN_TESTS_SHARED=1: other ebpf-run processes (a second checkout's tests, a bench)
    # run on this machine, and this machine-wide check would see their programs. Never in CI.
    if os.geteuid() == 0 and os.environ.get("EBPF_RUN_TESTS_SHARED") != "1":
        assert_nothing_loaded()


def assert_nothing_loaded(grace: float = 3.0) -> None:
    """The kernel frees programs asynchronously (a prog_array's entries are released by a
    work item once its last user fd closes), so allow a short grace period."""
    end = time.monotonic() + grace
    while (left := ebpf_run_programs()) and time.monotonic() < end:
        time.sleep(0.1)
    assert left == [], f"programs left loaded after ebpf-run exited: {left}"


def kprobes_available() -> bool:
    return os.path.exists("/sys/kernel/tracing/kprobe_events")


@pytest.fixture
def expected_syscall_attach():
    """The attach line each syscall probe must print on this kernel."""
    if os.environ.get("EBPF_RUN_VM") == "1":
        assert kprobes_available(), "the second-kernel VM must offer kprobes"
    if kprobes_available():
        return "attached to kprobe on the execve syscall"
    return ("attached to tracepoint syscalls:sys_enter_execve (kprobe on the execve syscall: "
            "kernel has no kprobes")
