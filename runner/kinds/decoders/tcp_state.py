"""TCP state number -> the kernel's name (include/net/tcp_states.h), as the
sock:inet_sock_set_state tracepoint prints them."""

from __future__ import annotations

from runner.kinds.decoders.base import Decoder

STATES = {
    1: "TCP_ESTABLISHED",
    2: "TCP_SYN_SENT",
    3: "TCP_SYN_RECV",
    4: "TCP_FIN_WAIT1",
    5: "TCP_FIN_WAIT2",
    6: "TCP_TIME_WAIT",
    7: "TCP_CLOSE",
    8: "TCP_CLOSE_WAIT",
    9: "TCP_LAST_ACK",
    10: "TCP_LISTEN",
    11: "TCP_CLOSING",
    12: "TCP_NEW_SYN_RECV",
    13: "TCP_BOUND_INACTIVE",  # 6.10+; the tracepoint's table stops at 12
}


def tcp_state_name(state: int) -> str:
    return STATES.get(state, str(state))


TCP_STATE = Decoder(
    "tcp_state",
    "int",
    tcp_state_name,
    keep_raw=False,
    doc="TCP state -> name (1 -> TCP_ESTABLISHED); else the number",
)
