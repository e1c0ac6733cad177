"""A self-contained SVG flame graph: width by samples, the root at the bottom, frames
searchable and zoomable in a browser, with no network access needed (its script and style
are inline). Frames narrower than MIN_WIDTH pixels are not drawn (they are counted in
their parent's width, and their number is the frames group's data-hidden).

In a browser: click a frame to zoom to it, "Reset Zoom" (or Escape) to go back, "Search"
(or Ctrl-F) for a regular expression whose matches turn magenta with their share of the
samples; `?s=REGEX` in the address searches on load. Every name is text from some file a
process mapped: it is escaped for XML and never reaches the script as code.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Sequence, Tuple
from xml.sax.saxutils import escape, quoteattr

WIDTH = 1200
FRAME_HEIGHT = 16
FONT_SIZE = 12
CHAR_WIDTH = 0.59 * FONT_SIZE  # Verdana's average, as flamegraph.pl assumes
PAD_X = 10
PAD_TOP = FONT_SIZE * 3
PAD_BOTTOM = FONT_SIZE * 2 + 10
MIN_WIDTH = 0.1  # pixels


@dataclass
class _Node:
    name: str
    value: int = 0
    children: Dict[str, _Node] = field(default_factory=dict)


@dataclass(frozen=True)
class _Box:
    name: str
    start: int  # samples before it, at its depth
    value: int
    depth: int


def parse_folded(lines: Iterable[str]) -> List[Tuple[List[str], int]]:
    """Folded lines (`a;b;c 12`) as (frames, count); lines that are not are skipped."""
    out = []
    for line in lines:
        path, _, count = line.rstrip("\n").rpartition(" ")
        if path and count.isdigit():
            out.append((path.split(";"), int(count)))
    return out


def flame_graph(paths: Iterable[Tuple[Sequence[str], int]], title: str) -> str:
    """The SVG text of a flame graph of `paths` (outermost frame first, and a count)."""
    root = _Node("all")
    for frames, count in paths:
        node = root
        node.value += count
        for name in frames:
            node = node.children.setdefault(name, _Node(name))
            node.value += count
    boxes = _layout(root)
    depth = max((b.depth for b in boxes), default=0)
    height = PAD_TOP + (depth + 1) * FRAME_HEIGHT + PAD_BOTTOM
    scale = (WIDTH - 2 * PAD_X) / root.value if root.value else 0.0
    drawn = [b for b in boxes if b.value * scale >= MIN_WIDTH]
    body = "\n".join(_frame(b, root.value, scale, height) for b in drawn)
    return _SVG.format(
        width=WIDTH, height=height, title=escape(_xml_text(title)),
        mid=WIDTH / 2, right=WIDTH - PAD_X, bottom=height - 10, pad=PAD_X,
        total=root.value, chars=CHAR_WIDTH, frames=body, style=_STYLE, script=_SCRIPT,
        hidden=len(boxes) - len(drawn))


def _layout(root: _Node) -> List[_Box]:
    """Every node as a box: children sorted by name (as flamegraph.pl), side by side."""
    out: List[_Box] = []
    stack = [(root, 0, 0)]
    while stack:
        node, start, depth = stack.pop()
        out.append(_Box(node.name, start, node.value, depth))
        at = start
        for name in sorted(node.children):
            child = node.children[name]
            stack.append((child, at, depth + 1))
            at += child.value
    out.sort(key=lambda b: (b.depth, b.start))
    return out


def _frame(b: _Box, total: int, scale: float, height: int) -> str:
    x = PAD_X + b.start * scale
    w = b.value * scale
    y = height - PAD_BOTTOM - (b.depth + 1) * FRAME_HEIGHT
    name = _xml_text(b.name)
    share = 100.0 * b.value / total if total else 0.0
    tip = f"{name} ({b.value:,} samples, {share:.2f}%)"
    return (f'<g class="f" data-s="{b.start}" data-n="{b.value}">'
            f"<title>{escape(tip)}</title>"
            f'<rect x="{x:.2f}" y="{y}" width="{w:.2f}" height="{FRAME_HEIGHT - 1}" '
            f'fill="{_colour(b.name)}" rx="2" ry="2"/>'
            f'<text x="{x + 3:.2f}" y="{y + FRAME_HEIGHT - 4}" data-name={quoteattr(name)}>'
            f"{escape(_label(name, w))}</text></g>")


def _label(name: str, width: float) -> str:
    fits = int((width - 6) / CHAR_WIDTH)
    if fits < 3:
        return ""
    return name if len(name) <= fits else name[: fits - 2] + ".."


def _colour(name: str) -> str:
    """Warm colours for user frames, orange for kernel (`_[k]`) frames, grey for the root;
    from a hash of the name, so a function keeps its colour across graphs."""
    h = hashlib.sha1(name.encode("utf-8", "replace")).digest()
    a, b = h[0] / 255, h[1] / 255
    if name == "all":
        return "rgb(200,200,200)"
    if name.endswith("_[k]"):
        return f"rgb({int(220 + 35 * a)},{int(120 + 60 * b)},{int(30 * a)})"
    return f"rgb({int(205 + 50 * a)},{int(230 * b)},{int(55 * a)})"


def _xml_text(text: str) -> str:
    """XML 1.0 has no place for most control characters: they become '?'."""
    return "".join("?" if (ord(c) < 0x20 and c not in "\t") or 0xD800 <= ord(c) <= 0xDFFF
                   or ord(c) in (0xFFFE, 0xFFFF) else c for c in text)


_STYLE = """
text { font-family: Verdana, sans-serif; font-size: 12px; fill: rgb(0,0,0); }
#title { font-size: 17px; }
#search, #reset { cursor: pointer; fill: rgb(60,60,160); }
.hide { display: none; }
g.f:hover rect { stroke: rgb(0,0,0); stroke-width: 0.5; cursor: pointer; }
g.f text { pointer-events: none; }
"""

# Kept free of "]]>" (it sits in a CDATA section) and of any name: it reads names from the
# DOM as text.
_SCRIPT = r"""
"use strict";
var svg, frames, details, matched, reset, total, width, pad, chars;
function init() {
  svg = document.documentElement;
  frames = Array.prototype.slice.call(document.querySelectorAll("g.f"));
  details = document.getElementById("details");
  matched = document.getElementById("matched");
  reset = document.getElementById("reset");
  total = +svg.getAttribute("data-total");
  width = +svg.getAttribute("width");
  pad = +svg.getAttribute("data-pad");
  chars = +svg.getAttribute("data-chars");
  frames.forEach(function (g) {
    g.addEventListener("click", function () { zoom(g); });
    g.addEventListener("mouseover", function () {
      details.textContent = g.querySelector("title").textContent; });
    g.addEventListener("mouseout", function () { details.textContent = " "; });
  });
  reset.addEventListener("click", unzoom);
  document.getElementById("search").addEventListener("click", function () {
    var re = prompt("Search for (a regular expression):", "");
    if (re !== null) search(re);
  });
  window.addEventListener("keydown", function (e) {
    if (e.key === "Escape") unzoom();
    if ((e.ctrlKey || e.metaKey) && e.key === "f") {
      e.preventDefault();
      var re = prompt("Search for (a regular expression):", "");
      if (re !== null) search(re);
    }
  });
  var q = new URLSearchParams(window.location.search).get("s");
  if (q) search(q);
  svg.setAttribute("data-ready", "1");
}
function fit(t, w) {
  var name = t.getAttribute("data-name"), n = Math.floor((w - 6) / chars);
  t.textContent = n < 3 ? "" : (name.length <= n ? name : name.slice(0, n - 2) + "..");
}
function place(start, n) {
  var scale = (width - 2 * pad) / n;
  frames.forEach(function (g) {
    var s = +g.getAttribute("data-s"), v = +g.getAttribute("data-n");
    var lo = Math.max(s, start), hi = Math.min(s + v, start + n);
    if (hi <= lo) { g.classList.add("hide"); return; }
    g.classList.remove("hide");
    var x = pad + (lo - start) * scale, w = (hi - lo) * scale;
    var r = g.querySelector("rect"), t = g.querySelector("text");
    r.setAttribute("x", x.toFixed(2)); r.setAttribute("width", w.toFixed(2));
    t.setAttribute("x", (x + 3).toFixed(2)); fit(t, w);
  });
}
function zoom(g) {
  place(+g.getAttribute("data-s"), +g.getAttribute("data-n"));
  reset.classList.remove("hide");
}
function unzoom() {
  place(0, total);
  reset.classList.add("hide");
}
function search(text) {
  var re;
  try { re = new RegExp(text); } catch (e) { matched.textContent = "bad expression"; return; }
  var spans = [];
  frames.forEach(function (g) {
    var r = g.querySelector("rect");
    if (!r.hasAttribute("data-fill")) r.setAttribute("data-fill", r.getAttribute("fill"));
    var hit = text !== "" && re.test(g.querySelector("text").getAttribute("data-name"));
    r.setAttribute("fill", hit ? "rgb(230,0,230)" : r.getAttribute("data-fill"));
    if (hit) spans.push([+g.getAttribute("data-s"), +g.getAttribute("data-n")]);
  });
  spans.sort(function (a, b) { return a[0] - b[0]; });
  var sum = 0, end = -1;
  spans.forEach(function (sp) {  /* nested matches count once */
    var lo = Math.max(sp[0], end), hi = sp[0] + sp[1];
    if (hi > lo) { sum += hi - lo; end = hi; }
  });
  matched.textContent = text === "" ? " " :
    "Matched: " + (100 * sum / total).toFixed(1) + "% (" + spans.length + " frames)";
  svg.setAttribute("data-matched", String(sum));
}
"""

_SVG = """<?xml version="1.0" standalone="no"?>
<svg version="1.1" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"
 viewBox="0 0 {width} {height}" data-total="{total}" data-pad="{pad}" data-chars="{chars}"
 onload="init()">
<style>{style}</style>
<script><![CDATA[{script}]]></script>
<rect x="0" y="0" width="100%" height="100%" fill="rgb(248,248,248)"/>
<text id="title" x="{mid}" y="24" text-anchor="middle">{title}</text>
<text id="reset" class="hide" x="{pad}" y="24">Reset Zoom</text>
<text id="search" x="{right}" y="24" text-anchor="end">Search</text>
<text id="details" x="{pad}" y="{bottom}"> </text>
<text id="matched" x="{right}" y="{bottom}" text-anchor="end"> </text>
<g id="frames" data-hidden="{hidden}">
{frames}
</g>
</svg>
"""
