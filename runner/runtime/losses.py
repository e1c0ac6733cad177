"""Losses: the in-kernel counters (buffer full, map full; tail calls that fell through,
which are no loss and are said as what they are), reported as
they grow and once more in the summary. Read after the final drain, when every record
the probes made is either received or counted here."""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

from runner.kernel.session import Kernel
from runner.model.spec import Drop, Spec
from runner.output.text import Sink


class Losses:
    def __init__(self, spec: Spec, sink: Sink):
        self.spec = spec
        self.sink = sink
        self.reported: Dict[Tuple[str, str], int] = {}

    def report(self, k: Kernel) -> List[Dict[str, Any]]:
        """Tell the sink what grew since the last report; return every non-zero total."""
        counts = k.maps.drop_counts() if k.bpf is not None else []
        out = []
        for d, total in zip(self.spec.drops, counts):
            key = (channel_of(d), d.reason)
            before = self.reported.get(key, 0)
            if total > before:
                self.reported[key] = total
                if d.is_loss:
                    self.sink.lost(key[0], d.reason, total - before, total)
                else:  # what happened, said as such: no record was lost
                    self.sink.note(f"{key[0]}: {total - before} {d.reason}; {total} in all")
            if total and d.is_loss:
                out.append({"channel": key[0], "reason": d.reason, "count": total})
        return out


def channel_of(d: Drop) -> str:
    return "messages" if d.channel == "er_messages" else d.channel


def lost_on(lost: List[Dict[str, Any]], channel: str) -> int:
    return sum(x["count"] for x in lost if x["channel"] == channel)


# The kernel's trace buffer is a ring that overwrites what nobody read in time (7 KB per
# CPU on this project's machines: about a hundred quick lines), silently.
TRACE_PIPE_LOSS = "overwritten in the kernel's trace buffer before it was read"


def trace_pipe_loss(sink: Sink, sent: int, received: int) -> List[Dict[str, Any]]:
    """Lines the probes printed (counted in the kernel) but ebpf-run never read."""
    missing = sent - received
    if missing <= 0:
        return []
    sink.lost("messages", TRACE_PIPE_LOSS, missing, missing)
    return [{"channel": "messages", "reason": TRACE_PIPE_LOSS, "count": missing}]
