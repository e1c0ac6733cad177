"""Stacks as text, folded lines and the SVG flame graph; the SVG is also opened in a real
headless browser (Debian's chromium): it loads without a script error, draws the expected
frames, and its search finds what it should."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest

from runner.output.flamegraph import flame_graph, parse_folded
from runner.output.stacks import Sample, as_json, folded, frame_lines
from runner.symbols.frames import Frame

SVG = "{http://www.w3.org/2000/svg}"
K = (Frame(0xFFFFFFFF81001071, "do_syscall_64", 113, kernel=True),
     Frame(0xFFFFFFFF82000076, "entry_SYSCALL_64_after_hwframe", 118, kernel=True))
U = (Frame(0x401126, "er_alpha", 6), Frame(0x401200, "main", 32), Frame(0x7F0000001000))


def test_a_stack_prints_as_bpftrace_prints_it():
    assert frame_lines(K) == "\n    do_syscall_64+113\n    entry_SYSCALL_64_after_hwframe+118\n"
    assert as_json(U) == ["er_alpha+6", "main+32", "0x7f0000001000"]


def test_folded_lines_go_outermost_first_and_add_up():
    samples = [Sample(K, U, "prog", 3), Sample(K, U, "prog", 2),
               Sample((), (Frame(0x401127, "er_alpha", 7), *U[1:]), "prog", 1),
               Sample((), (), "idle;x\n", 4)]
    assert folded(samples) == [
        "idle?x? 4",
        "prog;0x7f0000001000;main;er_alpha 1",
        "prog;0x7f0000001000;main;er_alpha;entry_SYSCALL_64_after_hwframe_[k];"
        "do_syscall_64_[k] 5",
    ]


HOSTILE = ["</text><script>alert(1)</script>", "]]><x/>", "bell\x07\x01name", "&amp;"]


def _graph() -> str:
    lines = ["prog;main;er_alpha;er_inner 300", "prog;main;er_beta 100", "prog;main;er_alpha 50",
             "prog;main;write;do_syscall_64_[k] 20"]
    paths = parse_folded(lines) + [(["prog", name], 1) for name in HOSTILE]
    return flame_graph(paths, "cpu <profile>")


def test_the_svg_is_well_formed_and_every_name_is_text():
    root = ET.fromstring(_graph())
    frames = root.findall(f".//{SVG}g[@class='f']")
    names = [g.find(f"{SVG}text").get("data-name") for g in frames]
    assert names[0] == "all" and {"er_alpha", "er_inner", "er_beta", "do_syscall_64_[k]"} <= set(
        names)
    assert {"</text><script>alert(1)</script>", "]]><x/>", "bell??name", "&amp;"} <= set(names)
    assert root.findall(f".//{SVG}script") and len(root.findall(f".//{SVG}script")) == 1
    widths = {n: float(g.find(f"{SVG}rect").get("width")) for n, g in zip(names, frames)}
    assert widths["all"] == pytest.approx(1180.0)
    assert widths["er_alpha"] / widths["er_beta"] == pytest.approx(3.5, abs=0.001)  # 2 decimals
    assert int(root.get("data-total")) == 474


def test_the_svg_is_the_same_for_the_same_stacks():
    assert _graph() == _graph()


CHROMIUM = shutil.which("chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0", "--hide-scrollbars"]


def _chromium(tmp_path, *args: str) -> subprocess.CompletedProcess:
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: ./scripts/setup installs it")
        pytest.skip("needs Debian's chromium (./scripts/setup installs it)")
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_a_browser_draws_the_graph_and_searches_it(tmp_path):
    svg = tmp_path / "cpu.svg"
    svg.write_text(_graph())
    done = _chromium(tmp_path, "--dump-dom", f"file://{svg}?s=^er_al")
    assert "Uncaught" not in done.stderr, done.stderr
    dom = done.stdout
    assert 'data-ready="1"' in dom  # init() ran to its end
    assert 'data-matched="350"' in dom  # er_alpha's 300 + 50, er_inner inside it not twice
    labels = re.findall(r'<text x="[^"]+" y="[^"]+" data-name="[^"]*">([^<]*)</text>', dom)
    assert {"er_alpha", "er_inner", "er_beta", "prog", "main"} <= set(labels)
    shot = tmp_path / "cpu.png"
    done = _chromium(tmp_path, "--window-size=1200,220", f"--screenshot={shot}", f"file://{svg}")
    assert "Uncaught" not in done.stderr
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 5000
