#!/usr/bin/python3
"""The hand-written BCC side of bench/run's perf-buffer rows, in the style of the book's
hello-buffer (Learning eBPF, ch. 2): BPF_PERF_OUTPUT, perf_submit, open_perf_buffer with
its defaults but the buffer size, perf_buffer_poll, one Python callback per event decoding
with `table.event()` and printing the line.

Same work as bench/getppid_perf.yaml: on every getppid() by uid 4242 (the load generator),
a 48-byte record through a 128-page-per-CPU perf buffer, printed as one text line. A failed
perf_submit is counted in the kernel, so received + lost can be checked against the calls
made (the book's program does not count losses; that is the only addition).

It prints `bcc-getppid: ready` on stderr once attached, runs until SIGINT or SIGTERM, then
reads what is left and prints `bcc-getppid: summary: N received; M lost` on stderr.
"""

import signal
import sys

from bcc import BPF

program = r"""
struct data_t {
    u32 pid;
    u32 tid;
    u32 uid;
    u32 cpu;
    u64 ktime;
    s64 nr;
    char comm[16];
};

BPF_PERF_OUTPUT(output);
BPF_PERCPU_ARRAY(lost, u64, 1);

TRACEPOINT_PROBE(syscalls, sys_enter_getppid) {
    u32 uid = bpf_get_current_uid_gid() & 0xFFFFFFFF;
    if (uid != 4242)
        return 0;
    struct data_t data = {};
    u64 pid_tgid = bpf_get_current_pid_tgid();
    data.pid = pid_tgid >> 32;
    data.tid = (u32)pid_tgid;
    data.uid = uid;
    data.cpu = bpf_get_smp_processor_id();
    data.ktime = bpf_ktime_get_ns();
    data.nr = args->__syscall_nr;
    bpf_get_current_comm(&data.comm, sizeof(data.comm));
    if (output.perf_submit(args, &data, sizeof(data)) < 0) {
        u32 zero = 0;
        u64 *n = lost.lookup(&zero);
        if (n)
            (*n)++;
    }
    return 0;
}
"""

b = BPF(text=program)
received = 0


def print_event(cpu, data, size):
    global received
    event = b["output"].event(data)
    print(f"{event.pid} {event.tid} {event.uid} {event.cpu} {event.ktime} {event.nr} "
          f"{event.comm.decode('utf-8', 'replace')}")
    received += 1


def no_message(count):
    """The kernel counter above is exact: without a handler BCC prints a line per loss."""


stopping = False


def stop(signum, frame):
    # A flag, not KeyboardInterrupt: raised inside the perf buffer callback, an exception
    # would be swallowed by ctypes.
    global stopping
    stopping = True


signal.signal(signal.SIGINT, stop)
signal.signal(signal.SIGTERM, stop)
b["output"].open_perf_buffer(print_event, page_cnt=128, lost_cb=no_message)
print("bcc-getppid: ready", file=sys.stderr, flush=True)
while not stopping:
    b.perf_buffer_poll(100)
b.perf_buffer_consume()
sys.stdout.flush()
print(f"bcc-getppid: summary: {received} received; {b['lost'].sum(0).value} lost",
      file=sys.stderr, flush=True)
b.cleanup()
