#!/usr/bin/python3
"""The hand-written BCC side of bench/run, in the style of the book (Learning eBPF, ch. 2).

Same work as bench/getppid.yaml: on every getppid() by uid 4242 (the load generator),
reserve a 48-byte record in a 256-page ring buffer, fill it, submit it (flags 0: adaptive
wakeup); in user space one Python callback per event decodes it with BCC's ctypes
`table.event()` and prints the same text line as ebpf-run. Reserve failures are counted
in the kernel, so received + lost can be checked against what the generator made.

It prints `bcc-getppid: ready` on stderr once attached, runs until SIGINT or SIGTERM,
then drains the ring and prints `bcc-getppid: summary: N received; M lost` on stderr.
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

BPF_RINGBUF_OUTPUT(output, 256);
BPF_PERCPU_ARRAY(lost, u64, 1);

TRACEPOINT_PROBE(syscalls, sys_enter_getppid) {
    u32 uid = bpf_get_current_uid_gid() & 0xFFFFFFFF;
    if (uid != 4242)
        return 0;
    struct data_t *data = output.ringbuf_reserve(sizeof(struct data_t));
    if (!data) {
        u32 zero = 0;
        u64 *n = lost.lookup(&zero);
        if (n)
            (*n)++;
        return 0;
    }
    u64 pid_tgid = bpf_get_current_pid_tgid();
    data->pid = pid_tgid >> 32;
    data->tid = (u32)pid_tgid;
    data->uid = uid;
    data->cpu = bpf_get_smp_processor_id();
    data->ktime = bpf_ktime_get_ns();
    data->nr = args->__syscall_nr;
    bpf_get_current_comm(&data->comm, sizeof(data->comm));
    output.ringbuf_submit(data, 0);
    return 0;
}
"""

b = BPF(text=program)
received = 0


def print_event(ctx, data, size):
    global received
    event = b["output"].event(data)
    print(f"{event.pid} {event.tid} {event.uid} {event.cpu} {event.ktime} {event.nr} "
          f"{event.comm.decode('utf-8', 'replace')}")
    received += 1


stopping = False


def stop(signum, frame):
    # A flag, not KeyboardInterrupt: raised inside the ring buffer callback, an exception
    # would be swallowed by ctypes and the next blocking poll would never return.
    global stopping
    stopping = True


signal.signal(signal.SIGINT, stop)
signal.signal(signal.SIGTERM, stop)
b["output"].open_ring_buffer(print_event)
print("bcc-getppid: ready", file=sys.stderr, flush=True)
while not stopping:
    b.ring_buffer_poll()
b.ring_buffer_consume()
sys.stdout.flush()
print(f"bcc-getppid: summary: {received} received; {b['lost'].sum(0).value} lost",
      file=sys.stderr, flush=True)
b.cleanup()
