"""The bench's report: medians of the measurements, the table, the per-variant lines, the
ratios against BCC and bpftrace and whether each target is met. Pure: it reads Results."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from harness import PEERS, Result, cpu_rate


def median(xs: Sequence[Optional[float]]) -> Optional[float]:
    known = [x for x in xs if x is not None]
    return statistics.median(known) if known else None


def zero_loss_rate(results: Sequence[Result], name: str, rep: int) -> float:
    ok = [r.rate for r in results if r.variant == name and r.rep == rep and r.phase == "ladder"
          and r.zero_loss]
    return max(ok, default=0.0)


def startup_median(results: Sequence[Result], name: str, phase: str) -> Optional[float]:
    """From the start-up phase for the variants started there; for the others (the perf
    pair) from all their runs, which are pinned."""
    ok = [r for r in results if r.variant == name and not r.error and r.startup_s]
    own = [r.startup_s for r in ok if r.phase == phase]
    return median(own or [r.startup_s for r in ok])


@dataclass
class Summary:
    zero_loss: Dict[str, Optional[float]] = field(default_factory=dict)
    zero_loss_reps: Dict[str, List[float]] = field(default_factory=dict)
    capped: Dict[str, bool] = field(default_factory=dict)
    cpu_us: Dict[str, Optional[float]] = field(default_factory=dict)
    startup_s: Dict[str, Optional[float]] = field(default_factory=dict)
    startup_1cpu_s: Dict[str, Optional[float]] = field(default_factory=dict)
    workload: Dict[str, Optional[float]] = field(default_factory=dict)
    delivered: Dict[str, Optional[float]] = field(default_factory=dict)  # at full speed, /s
    per_cpu_s: Dict[str, Optional[float]] = field(default_factory=dict)  # calls per CPU-second
    gen_ns: Dict[str, Optional[float]] = field(default_factory=dict)  # at the reference rate
    alone_ns: Dict[str, Optional[float]] = field(default_factory=dict)  # none, at n's rate
    lowest: float = 0.0  # the ladder's lowest rate


def summarize(results: Sequence[Result], names: Sequence[str], cfg: dict) -> Summary:
    s = Summary(lowest=min(cfg["rates"]))
    top = max(cfg["rates"])
    for n in names:
        reps = [zero_loss_rate(results, n, rep) for rep in range(cfg["reps"])]
        s.zero_loss_reps[n] = reps
        s.zero_loss[n] = median(reps)
        s.capped[n] = s.zero_loss[n] == top
        s.cpu_us[n] = median([r.cpu_per_event_us for r in results if r.variant == n
                              and r.phase == "ladder" and r.rate == cpu_rate(cfg, n in PEERS)
                              and not r.error])
        s.startup_s[n] = startup_median(results, n, "startup")
        s.startup_1cpu_s[n] = startup_median(results, n, "startup-1cpu")
    for n in ["none", *names]:
        full = [r for r in results if r.variant == n and r.phase == "workload" and not r.error]
        s.workload[n] = median([r.achieved for r in full])
        s.delivered[n] = median([r.received * r.achieved / r.calls for r in full if r.calls])
        s.per_cpu_s[n] = median([1e9 / ns for r in full if (ns := r.gen_ns_per_call)])
        s.gen_ns[n] = median([r.gen_ns_per_call for r in results if r.variant == n
                              and r.phase == "ladder" and r.rate == cpu_rate(cfg, n in PEERS)
                              and not r.error])
        s.alone_ns[n] = median([r.gen_ns_per_call for r in results if r.variant == "none"
                                and r.phase == "ladder"
                                and r.rate == cpu_rate(cfg, n in PEERS)])
    return s


def fmt_rate(x: Optional[float]) -> str:
    if x is None:
        return "-"
    if x >= 1e6:
        return f"{x / 1e6:.2f}M"
    return f"{x / 1e3:.0f}k"


def ratio_value(a: Optional[float], b: Optional[float]) -> Optional[float]:
    """a / b as printed (two decimals), so that a target is judged on the printed figure."""
    return round(a / b, 2) if a is not None and b else None


def ratio(a: Optional[float], b: Optional[float]) -> str:
    x = ratio_value(a, b)
    return "n/a" if x is None else f"{x:.2f}"


def table(results: Sequence[Result], names: Sequence[str]) -> str:
    head = ("variant", "offered/s", "achieved/s", "received", "lost", "gap", "CPU/event",
            "start-up", "gen CPU/call", "runs")
    rows: List[Tuple[str, ...]] = [head]
    keys: List[Tuple[str, str, float]] = []
    for r in results:
        k = (r.phase, r.variant, r.rate)
        if k not in keys:
            keys.append(k)
    keys.sort(key=lambda k: (k[0] != "ladder", k[2], ["none", *names].index(k[1])))
    for phase, name, rate in keys:
        rs = [r for r in results if (r.phase, r.variant, r.rate) == (phase, name, rate)]
        good = [r for r in rs if not r.error]

        def med(get: Callable[[Result], Optional[float]],
                rs: List[Result] = good) -> Optional[float]:
            return median([get(r) for r in rs])

        cpu = med(lambda r: r.cpu_per_event_us)
        start = med(lambda r: r.startup_s) if name != "none" else None
        gen = med(lambda r: r.gen_ns_per_call)
        rows.append((
            name, "max" if rate == 0 else fmt_rate(rate), fmt_rate(med(lambda r: r.achieved)),
            _int(med(lambda r: r.received)) if name != "none" else "-",
            _int(med(lambda r: r.lost)) if name != "none" else "-",
            _int(med(lambda r: r.gap)) if name != "none" else "-",
            f"{cpu:.2f} us" if cpu is not None else "-",
            f"{start * 1000:.0f} ms" if start is not None else "-",
            f"{gen:.0f} ns" if gen is not None else "-",
            f"{len(good)}" + (f" ({len(rs) - len(good)} failed)" if len(rs) > len(good) else ""),
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(row, widths)))
                     for row in rows)


def _int(x: Optional[float]) -> str:
    return "-" if x is None else f"{x:,.0f}"


def report(results: Sequence[Result], names: Sequence[str], cfg: dict,
           aggregations: Optional[Dict[str, Optional[float]]] = None,
           profile: Optional[dict] = None) -> str:
    s = summarize(results, names, cfg)
    lines = [table(results, names), ""]
    laddered = [n for n in names if any(r.variant == n and r.phase == "ladder"
                                        for r in results)]
    full_speed = [n for n in names if any(r.variant == n and r.phase == "workload"
                                          for r in results)]
    for n in laddered:
        cap = " (the ladder's top: a lower bound)" if s.capped[n] else ""
        per = ", ".join(fmt_rate(x) for x in s.zero_loss_reps[n])
        lines.append(f"zero-loss rate  {n:<14} {fmt_rate(s.zero_loss[n])}/s{cap} "
                     f"(per repetition: {per})")
    for n in laddered:
        cpu = s.cpu_us[n]
        at = fmt_rate(cpu_rate(cfg, n in PEERS))
        lines.append(f"CPU per event   {n:<14} "
                     + (f"{cpu:.2f} us at {at}/s" if cpu is not None else "-"))
    for n in names:
        st = s.startup_s[n]
        lines.append(f"start-up        {n:<14} "
                     + (f"{st * 1000:.0f} ms to ready" if st is not None else "-"))
    for n in ["none", *full_speed]:
        lines.append(f"workload        {n:<14} {fmt_rate(s.workload[n])} calls/s at full speed "
                     f"({fmt_rate(s.per_cpu_s[n])} per second of its own CPU)"
                     + (", no tool attached" if n == "none" else
                        f", {fmt_rate(s.delivered[n])} events/s of them received"))
    for n in laddered:
        with_probe, alone = s.gen_ns[n], s.alone_ns[n]
        rate = fmt_rate(cpu_rate(cfg, n in PEERS))
        lines.append(f"probe cost      {n:<14} " + (
            f"{with_probe - alone:+.0f} ns of generator CPU per call at {rate}/s "
            f"({with_probe:.0f} ns, {alone:.0f} ns without a probe)"
            if with_probe is not None and alone is not None else "-"))
    lines.append("")
    base = "bcc"
    # Extra variants first: the last line is always the primary ebpf-run's.
    for n in sorted((n for n in full_speed if n != base), key=lambda n: n == "ebpf-run"):
        zl = zl_ratio(s, n, base)
        label = "" if n == "ebpf-run" else f" ({n})"
        lines.append(f"targets{label}: {targets_met(s, n, base)}")
        if n == "ebpf-run":
            lines += peer_lines(s, names, aggregations or {})
            lines += profile_lines(profile)
        lines.append(f"ratios vs BCC{label}: zero-loss-rate={zl} "
                     f"cpu-per-event={ratio(s.cpu_us[n], s.cpu_us[base])} "
                     f"startup={ratio(s.startup_s[n], s.startup_s[base])} "
                     f"workload={ratio(s.workload[n], s.workload[base])}")
    return "\n".join(lines)


def probe_cost(s: Summary, n: str) -> Optional[float]:
    with_probe, alone = s.gen_ns.get(n), s.alone_ns.get(n)
    return with_probe - alone if with_probe is not None and alone is not None else None


def zl_ratio(s: Summary, n: str, base: str) -> str:
    if n not in s.zero_loss or base not in s.zero_loss:
        return "n/a"
    ours = s.zero_loss[n]
    if s.zero_loss[base] == 0 and ours:
        # The other side lost events even at the lowest step: a lower bound.
        return f">{ours / s.lowest:.2f}"
    zl = ratio(ours, s.zero_loss[base])
    return ">=" + zl if s.capped[n] and zl != "n/a" else zl


def peer_lines(s: Summary, names: Sequence[str],
               aggregations: Dict[str, Optional[float]]) -> List[str]:
    """The perf-buffer pair, start-up and bpftrace lines (the last line stays the ring's)."""
    def get(d: Dict[str, Optional[float]], n: str) -> Optional[float]:
        return d.get(n) if n in names else None

    def agg(key: str) -> str:
        x = aggregations.get(key)
        return f"{x:.2f}" if x is not None else "n/a"

    def one_cpu(n: str) -> str:
        return ratio(get(s.startup_1cpu_s, n), get(s.startup_1cpu_s, "bcc"))

    warm, bcc = get(s.startup_s, "ebpf-run"), get(s.startup_s, "bcc")
    cold, bt = get(s.startup_s, "ebpf-run-cold"), get(s.startup_s, "bpftrace")
    perf = {"zl": zl_ratio(s, "ebpf-run-perf", "bcc-perf"),
            "cpu": ratio(get(s.cpu_us, "ebpf-run-perf"), get(s.cpu_us, "bcc-perf")),
            "probe": ratio(probe_cost(s, "ebpf-run-perf"), probe_cost(s, "bcc-perf"))}
    vs_bt = {"startup": ratio(warm, bt), "zl": zl_ratio(s, "ebpf-run", "bpftrace")}

    def met(x: str, ok: Callable[[float], bool]) -> str:
        return "n/a" if x == "n/a" else ("met" if ok(float(x.lstrip(">="))) else "NOT met")

    return [
        f"start-up cold vs BCC: {ratio(cold, bcc)} (a first run: empty cache directory; "
        f"pinned to one CPU: cold {one_cpu('ebpf-run-cold')}, warm {one_cpu('ebpf-run')})",
        "targets (perf buffer, start-up, bpftrace): "
        f"perf zero-loss-rate>=4 {met(perf['zl'], lambda x: x >= 4)}; "
        f"perf cpu-per-event<=0.3 {met(perf['cpu'], lambda x: x <= 0.3)}; "
        f"perf probe-cost<=0.5 {met(perf['probe'], lambda x: x <= 0.5)}; "
        f"startup warm<=0.5 {met(ratio(warm, bcc), lambda x: x <= 0.5)}; "
        f"startup cold<=1.0 {met(ratio(cold, bcc), lambda x: x <= 1.0)}; "
        f"vs bpftrace zero-loss-rate>=4 {met(vs_bt['zl'], lambda x: x >= 4)}; "
        f"vs bpftrace startup<=2 {met(vs_bt['startup'], lambda x: x <= 2)}",
        f"ratios vs BCC (perf buffer): zero-loss-rate={perf['zl']} "
        f"cpu-per-event={perf['cpu']} probe-cost={perf['probe']}",
        f"ratios vs bpftrace: startup={vs_bt['startup']} zero-loss-rate={vs_bt['zl']} "
        f"probe-cost-count={agg('probe-cost-count')} probe-cost-hist={agg('probe-cost-hist')}",
        f"startup warm vs BCC: {ratio(warm, bcc)}",
    ]


def targets_met(s: Summary, n: str, base: str) -> str:
    def check(a: Optional[float], b: Optional[float], ok: Callable[[float], bool]) -> str:
        x = ratio_value(a, b)
        return "n/a" if x is None else ("met" if ok(x) else "NOT met")

    return (f"zero-loss-rate>=2 {check(s.zero_loss[n], s.zero_loss[base], lambda x: x >= 2)}; "
            f"cpu-per-event<=0.5 {check(s.cpu_us[n], s.cpu_us[base], lambda x: x <= 0.5)}; "
            f"startup<=1.1 {check(s.startup_s[n], s.startup_s[base], lambda x: x <= 1.1)}; "
            f"workload>=0.95 {check(s.workload[n], s.workload[base], lambda x: x >= 0.95)}")


def profile_lines(profile: Optional[dict]) -> List[str]:
    """bench/profile_bench.py's figures (its --json line), the ratio line last; n/a where
    it did not run."""
    if not profile:
        return ["ratios vs bpftrace (profile): overhead=n/a dump=n/a"]
    lines = []
    for hz, cost in profile["overhead"].items():
        lines.append(f"profile {hz:>4} Hz: BPF ns per sample " + ", ".join(
            f"{k} {v['bpf_ns_per_sample']:.0f}" for k, v in cost.items())
            + "; workload CPU added " + ", ".join(
            f"{k} {v['added_percent']:+.2f}%" for k, v in cost.items()))
    lines.append("profile dump (SIGINT to exit, symbolized): " + ", ".join(
        f"{k} {d['stacks']:,} distinct stacks in {d['seconds']:.2f} s"
        for k, d in profile["dump"].items()))
    def shown(x: Optional[float]) -> str:
        return "n/a" if x is None else f"{x:.2f}"

    lines.append(f"ratios vs bpftrace (profile): overhead={shown(profile['ratio_overhead'])} "
                 f"dump={shown(profile['ratio_dump'])}")
    return lines
