"""Templates compiled at install time (runner/codegen/template_cache.py): the same text as
templates compiled from source, nothing compiled on a full hit, and whatever is stale,
damaged or not trustworthy compiled from source instead, without a word or a traceback."""

from __future__ import annotations

import marshal
import os
import shutil
import stat
import subprocess

import jinja2
import pytest

from runner.codegen import render as R
from runner.codegen import template_build, template_cache
from runner.pipeline import check
from runner.support.resources import read_text

from .util import ROOT

# Every shipped spec: the tracked ones outside the tests' own data and deploy/ (Kubernetes
# manifests; the specs in its ConfigMap are checked by test_deploy.py).
SPECS = [ROOT / p for p in subprocess.run(
    ["git", "ls-files", "*.yaml", ":!tests", ":!deploy"], cwd=ROOT, capture_output=True, text=True,
    check=True).stdout.split()]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    directory = tmp_path_factory.mktemp("compiled")
    assert template_build.build(directory) == len(R.template_names()) > 20
    return directory


@pytest.fixture
def compiles(monkeypatch):
    """How many templates Jinja compiled from source from here on."""
    count = [0]
    real = jinja2.Environment.compile

    def counting(self, *args, **kwargs):
        count[0] += 1
        return real(self, *args, **kwargs)

    monkeypatch.setattr(jinja2.Environment, "compile", counting)
    return count


def rendered_with(directory, monkeypatch) -> dict:
    monkeypatch.setattr(R, "_env", [R.template_environment(
        template_cache.InstalledBytecode(directory))])
    out = {}
    for path in SPECS:
        r = R.render(check(str(path), "x86_64"))
        out[path.name] = (r.c, r.python)
    return out


def test_the_same_text_as_from_source_and_nothing_compiled(built, tmp_path, monkeypatch,
                                                           compiles):
    from_cache = rendered_with(built, monkeypatch)
    assert compiles[0] == 0  # every template came from the built directory
    from_source = rendered_with(tmp_path / "nothing-built", monkeypatch)
    assert compiles[0] > 20
    assert from_cache == from_source


def test_an_edited_template_is_compiled_from_source(built, monkeypatch, compiles):
    env = R.template_environment(template_cache.InstalledBytecode(built))
    edited = read_text("templates", "program.c.j2") + "/* edited after setup */\n"
    env.loader = jinja2.FunctionLoader(
        lambda name: edited if name == "program.c.j2" else read_text("templates", name))
    text = env.get_template("program.c.j2").render(spec=check(str(SPECS[0]), "x86_64"))
    assert text.endswith("/* edited after setup */\n")
    assert compiles[0] == 1


def one_entry(built, tmp_path):
    """A copy of the built directory and the entry of program.c.j2 in it."""
    copy = tmp_path / "copy"
    shutil.copytree(built, copy)
    key = template_cache.InstalledBytecode(copy).get_cache_key("program.c.j2")
    return copy, copy / f"{key}.code"


def compiled_from_source(directory, compiles) -> bool:
    before = compiles[0]
    env = R.template_environment(template_cache.InstalledBytecode(directory))
    env.get_template("program.c.j2")
    return compiles[0] == before + 1


def test_a_trusted_entry_is_used(built, tmp_path, compiles):
    copy, _entry = one_entry(built, tmp_path)
    assert not compiled_from_source(copy, compiles)


def test_a_link_is_not_followed(built, tmp_path, compiles):
    copy, entry = one_entry(built, tmp_path)
    target = tmp_path / "elsewhere.code"
    entry.rename(target)
    entry.symlink_to(target)
    assert compiled_from_source(copy, compiles)


def test_an_entry_others_may_write_is_ignored(built, tmp_path, compiles):
    copy, entry = one_entry(built, tmp_path)
    os.chmod(entry, 0o664)
    assert compiled_from_source(copy, compiles)


def test_a_fifo_is_not_waited_on(built, tmp_path, compiles):
    copy, entry = one_entry(built, tmp_path)
    entry.unlink()
    os.mkfifo(entry, 0o644)  # opened without O_NONBLOCK, this would wait for a writer forever
    assert compiled_from_source(copy, compiles)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file away needs root")
def test_an_entry_someone_else_owns_is_ignored(built, tmp_path, compiles):
    copy, entry = one_entry(built, tmp_path)
    os.chown(entry, 65534, 65534)
    assert stat.S_IMODE(entry.stat().st_mode) == 0o644
    assert compiled_from_source(copy, compiles)


@pytest.mark.parametrize("damage", ["random", "truncated", "another python", "not code"])
def test_a_damaged_entry_is_compiled_from_source(built, tmp_path, compiles, damage):
    copy, entry = one_entry(built, tmp_path)
    data = entry.read_bytes()
    if damage == "random":
        entry.write_bytes(os.urandom(len(data)))
    elif damage == "truncated":
        entry.write_bytes(data[: len(data) // 2])
    elif damage == "another python":
        entry.write_bytes(data.replace(b"\n", b"\nX", 1))  # the header no longer matches
    else:  # the right header and digest, then something marshal reads that is not code
        checksum = template_cache.InstalledBytecode(copy).get_source_checksum(
            read_text("templates", "program.c.j2"))
        entry.write_bytes(template_cache._seal(checksum, marshal.dumps(1)))
    assert compiled_from_source(copy, compiles)


# In a child: before the digest, a flip could crash the interpreter (SIGSEGV in marshal).
FLIPS = r"""
import json, sys
from pathlib import Path
from runner.codegen import render as R, template_cache
from runner.pipeline import check

directory, entry, spec = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
model = check(spec, "x86_64")

def render(d):
    env = R.template_environment(template_cache.InstalledBytecode(d))
    return env.get_template("program.c.j2").render(spec=model)

expected = render(directory / "nothing-built")
original = entry.read_bytes()
step = max(1, len(original) // 100)  # about 100 positions across the code
positions = sorted(set(range(0, 160, 2)) | set(range(160, len(original), step))
                   | {len(original) - 1})
wrong = []
for pos in positions:
    damaged = bytearray(original)
    damaged[pos] ^= 0x01 if pos % 2 else 0x80
    entry.write_bytes(damaged)
    try:
        if render(directory) != expected:
            wrong.append((pos, "different C"))
    except Exception as e:
        wrong.append((pos, repr(e)[:80]))
entry.write_bytes(original)
print(json.dumps({"tried": len(positions), "size": len(original), "wrong": wrong[:10],
                  "wrong_count": len(wrong)}))
"""


@pytest.mark.slow  # seconds of waiting or subprocesses: the full tier
def test_every_flipped_byte_renders_the_same_c_as_without_the_cache(built, tmp_path):
    """A damaged entry is ignored, as the module says: each of ~180 single-bit flips
    across the header (every other byte), the digest and the code renders the same C as
    a cache-less run, with no traceback and no crash (a SIGSEGV before the digest)."""
    import json
    import sys

    copy, entry = one_entry(built, tmp_path)
    res = subprocess.run([sys.executable, "-c", FLIPS, str(copy), str(entry),
                          str(ROOT / "specs" / "tools" / "opensnoop.yaml")],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, (res.returncode, res.stderr[-2000:])
    got = json.loads(res.stdout)
    assert got["tried"] > 150 and got["wrong_count"] == 0, got


def test_the_build_writes_readable_files_and_nothing_else(built):
    names = sorted(p.name for p in built.iterdir())
    assert len(names) == len(R.template_names())
    assert all(n.endswith(".code") for n in names)
    assert all(stat.S_IMODE((built / n).stat().st_mode) == 0o644 for n in names)
