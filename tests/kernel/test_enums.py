"""Kernel enums by name, run for real: constants in conditions (TCP_SYN_SENT,
SKB_DROP_REASON_NO_SOCKET) become the running kernel's numbers, and `enum NAME` decoders
print them back as names. The numbers are the kernel's own: skb_drop_reason's differ
between 6.1 and 6.18, so the test takes them from the same BTF the run reads."""

from __future__ import annotations

import contextlib
import socket

from harness import Run

from runner.support.enums import enum_table
from runner.support.syscalls import host_arch

SPEC = """\
name: enums
params:
  port: {type: u64, default: 0}
structs:
  change: [{oldstate: s32}, {newstate: s32}]
  drop: [{reason: u32}]
maps:
  changes: {type: ringbuf, value: change}
  drops: {type: ringbuf, value: drop}
probes:
  state_change:
    attach: {tracepoint: "sock:inet_sock_set_state"}
    do:
      - if: "args.protocol == IPPROTO_TCP && args.dport == params.port
             && (args.oldstate == TCP_SYN_SENT || args.newstate == TCP_SYN_SENT)"
        then:
          - emit: {to: changes, set: {oldstate: args.oldstate, newstate: args.newstate}}
  dropped:
    attach: {tracepoint: "skb:kfree_skb"}
    do:
      - if: "args.reason == SKB_DROP_REASON_NO_SOCKET"
        then: [{emit: {to: drops, set: {reason: args.reason}}}]
output:
  - events: changes
    decode: {oldstate: enum tcp_state, newstate: enum tcp_state}
  - events: drops
    decode: {reason: enum skb_drop_reason}
"""


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_refused_connect_shows_tcp_states_and_its_drop_reason_by_name(tmp_path):
    spec = tmp_path / "enums.yaml"
    spec.write_text(SPEC)
    port = _closed_port()
    with Run(str(spec), "--json", "--set", f"port={port}") as run:
        run.wait_ready()
        with contextlib.suppress(ConnectionRefusedError):  # refused, as meant
            socket.create_connection(("127.0.0.1", port), 5).close()
        run.wait_output(lambda lines: sum('"channel": "changes"' in ln for ln in lines) >= 2
                        and any('"channel": "drops"' in ln for ln in lines),
                        what="two state changes and a drop")
        assert run.stop() == 0
    table = enum_table(host_arch())
    tcp, reasons = table.enum("tcp_state"), table.enum("skb_drop_reason")
    assert tcp is not None and reasons is not None
    events = [r for r in run.json() if r.get("type") == "event"]
    changes = [r["data"] for r in events if r["channel"] == "changes"]
    assert changes == [
        {"oldstate": tcp["TCP_CLOSE"], "oldstate_name": "TCP_CLOSE",
         "newstate": tcp["TCP_SYN_SENT"], "newstate_name": "TCP_SYN_SENT"},
        {"oldstate": tcp["TCP_SYN_SENT"], "oldstate_name": "TCP_SYN_SENT",
         "newstate": tcp["TCP_CLOSE"], "newstate_name": "TCP_CLOSE"},
    ]
    drops = [r["data"] for r in events if r["channel"] == "drops"]
    # Other packets to closed ports may be dropped meanwhile: every one has this reason.
    assert drops and {tuple(d.items()) for d in drops} == {
        (("reason", reasons["SKB_DROP_REASON_NO_SOCKET"]),
         ("reason_name", "SKB_DROP_REASON_NO_SOCKET"))}
