"""The compile cache: hits skip the front end and equal a fresh compile; misses when
anything it depends on changes; and every way found to make root load someone else's
entry (issue 16) is refused, ignored with one warning line, and rebuilt."""

from __future__ import annotations

import functools
import io
import json
import os
import shutil
import subprocess
import sys

import pytest

from runner import pipeline
from runner.support import cache, cache_dir
from runner.support.syscalls import host_arch

from .util import ROOT

# Every shipped spec, the tools included: each carries other parts of the model.
SPECS = sorted(str(p.relative_to(ROOT / "specs")) for p in (ROOT / "specs").rglob("*.yaml"))
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown to another uid")
NOBODY = 65534


@pytest.fixture
def xdg(tmp_path, monkeypatch):
    """XDG_CACHE_HOME in a fresh directory; no fall-back to the real home; no warnings yet."""
    base = tmp_path / "xdg"
    base.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_CACHE_HOME", str(base))
    monkeypatch.delenv("EBPF_RUN_NO_CACHE", raising=False)
    monkeypatch.setattr(cache_dir, "_account_home", lambda: None)
    monkeypatch.setattr(cache, "_warned", set())
    return base


@pytest.fixture
def spec(tmp_path):
    path = tmp_path / "hello.yaml"
    shutil.copy(ROOT / "specs" / "hello-buffer.yaml", path)
    return path


def fresh(path, monkeypatch):
    """A compile that neither reads nor writes the cache."""
    with monkeypatch.context() as m:
        m.setenv("EBPF_RUN_NO_CACHE", "1")
        return pipeline.compile_spec(str(path))


def entry_of(path):
    return cache.key(str(path), path.read_bytes(), host_arch()) + cache.SUFFIX


def entries(d):
    return sorted(p.name for p in d.iterdir())


def no_front_end(monkeypatch):
    """Make a miss fail the test: what follows must be a hit."""
    monkeypatch.setattr(pipeline, "check", lambda *a: pytest.fail("expected a cache hit"))


def sealed(k, value):
    """A well-formed entry for key `k`: the digest is no secret, anyone can make one."""
    payload = cache._codec(type(value)).dumps(value)
    return cache.MAGIC + cache._digest(k, payload) + b"\n" + payload


def evil_entry(spec, monkeypatch):
    """A perfectly sealed entry for `spec`'s key whose C says something else."""
    honest = fresh(spec, monkeypatch)
    evil = pipeline.Compiled(honest.spec, type(honest.rendered)(
        honest.rendered.c.replace("Hello World", "Hello Evil!"), honest.rendered.python))
    return sealed(entry_of(spec)[:-len(cache.SUFFIX)], evil)


def one_warning(capsys, *words):
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ebpf-run: warning: "), err
    for w in words:
        assert w in lines[0]
    return lines[0]


# -- hits and misses


def test_second_compile_comes_from_cache(xdg, spec, monkeypatch):
    first = pipeline.compile_spec(str(spec))
    assert entries(xdg / "ebpf-run") == [entry_of(spec)]
    assert (xdg / "ebpf-run" / entry_of(spec)).stat().st_mode & 0o777 == 0o600
    with monkeypatch.context() as m:
        no_front_end(m)
        assert pipeline.compile_spec(str(spec)) == first
    # Any change to the spec is a miss.
    spec.write_text(spec.read_text().replace("Hello World", "Hello There"))
    changed = pipeline.compile_spec(str(spec))
    assert '"Hello There"' in changed.rendered.c


def test_key_depends_on_name_arch_and_bytes():
    base = cache.key("a.yaml", b"x", "x86_64")
    assert base != cache.key("b.yaml", b"x", "x86_64")
    assert base != cache.key("a.yaml", b"y", "x86_64")
    assert base != cache.key("a.yaml", b"x", "aarch64")


@pytest.mark.parametrize("name", SPECS)
def test_a_hit_equals_a_fresh_compile_for_every_shipped_spec(name, xdg, tmp_path, monkeypatch):
    path = tmp_path / name.replace("/", "-")
    shutil.copy(ROOT / "specs" / name, path)
    warnings = io.StringIO()
    monkeypatch.setattr(sys, "stderr", warnings)
    pipeline.compile_spec(str(path))
    assert warnings.getvalue() == ""  # no "not caching: ..." : every part of the model encodes
    with monkeypatch.context() as m:
        no_front_end(m)
        hit = pipeline.compile_spec(str(path))
    assert hit == fresh(path, monkeypatch)


def test_a_hit_imports_no_yaml_jsonschema_or_jinja(xdg, spec):
    code = ("import sys; from runner.pipeline import compile_spec; "
            f"compile_spec({str(spec)!r}); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('yaml', 'jsonschema', 'jinja2', 'pickle') or m.startswith('runner.check')))")
    env = {**os.environ, "XDG_CACHE_HOME": str(xdg)}
    env.pop("EBPF_RUN_NO_CACHE", None)
    runs = [subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, text=True,
                           capture_output=True, timeout=60) for _ in range(2)]
    assert [r.returncode for r in runs] == [0, 0] and runs[1].stderr == "", runs
    assert "yaml" in runs[0].stdout  # the miss did load the front end
    assert runs[1].stdout.strip() == "[]"


def test_no_cache_setting_neither_reads_nor_writes(xdg, spec, monkeypatch):
    monkeypatch.setenv("EBPF_RUN_NO_CACHE", "1")
    pipeline.compile_spec(str(spec))
    assert not (xdg / "ebpf-run").exists()
    assert cache.directory() is None


# -- damaged or forged entries


@pytest.mark.parametrize("damage", ["edit in place", "truncate", "garbage", "empty",
                                    "old pickle format", "entry of another key"])
def test_a_damaged_entry_is_ignored_rebuilt_and_then_hit(damage, xdg, spec, capsys,
                                                         monkeypatch):
    good = pipeline.compile_spec(str(spec))
    path = xdg / "ebpf-run" / entry_of(spec)
    data = path.read_bytes()
    if damage == "edit in place":  # same length: what the BPF program prints changes
        assert b"Hello World" in data
        data = data.replace(b"Hello World", b"Hello Evil!")
    elif damage == "truncate":
        data = data[:len(data) // 2]
    elif damage == "garbage":
        data = os.urandom(len(data))
    elif damage == "empty":
        data = b""
    elif damage == "old pickle format":
        data = b"\x80\x05\x95" + data
    else:  # a valid entry, but sealed for another spec's key
        data = sealed("0" * 64, good)
    path.write_bytes(data)
    capsys.readouterr()
    again = pipeline.compile_spec(str(spec))
    one_warning(capsys, f"ignored cache entry {path}", "rebuilding it")
    assert again == good and "Hello Evil!" not in again.rendered.c
    with monkeypatch.context() as m:
        no_front_end(m)
        assert pipeline.compile_spec(str(spec)) == good
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("forgery, complaint", [
    (lambda t: t["fields"]["spec"].update({"class": "subprocess.Popen"}),
     "spec: expected a Spec object"),
    (lambda t: t["fields"]["spec"]["fields"].pop("maps"), "Spec fields differ"),
    (lambda t: t["fields"]["spec"]["fields"].update({"name": 7}),
     "spec.name: expected a string, found int"),
    (lambda t: t["fields"]["rendered"]["fields"].update({"c": ["x"]}),
     "rendered.c: expected a string, found list"),
])
def test_a_sealed_entry_of_the_wrong_shape_is_ignored(forgery, complaint, xdg, spec, capsys):
    """Right digest, wrong content: the decoder, not the digest, refuses it."""
    good = pipeline.compile_spec(str(spec))
    path = xdg / "ebpf-run" / entry_of(spec)
    tree = json.loads(path.read_bytes().split(b"\n", 2)[2])
    forgery(tree)
    path.write_bytes(cache.MAGIC + cache._digest(path.stem, json.dumps(tree).encode()) + b"\n"
                     + json.dumps(tree).encode())
    assert pipeline.compile_spec(str(spec)) == good
    one_warning(capsys, complaint, "rebuilding it")


def test_a_damaged_entry_gives_one_warning_line_and_no_traceback_from_the_cli(xdg):
    env = {**os.environ, "XDG_CACHE_HOME": str(xdg)}
    env.pop("EBPF_RUN_NO_CACHE", None)

    def render():
        return subprocess.run([sys.executable, "-m", "runner", "render", "specs/hello.yaml"],
                              cwd=ROOT, env=env, text=True, capture_output=True, timeout=60)

    first = render()
    assert first.returncode == 0, first.stderr
    (entry,) = (xdg / "ebpf-run").iterdir()
    entry.write_bytes(entry.read_bytes()[:100])
    damaged, healed = render(), render()
    assert damaged.returncode == 0 and damaged.stdout == first.stdout
    assert damaged.stderr.startswith("ebpf-run: warning: ignored cache entry ")
    assert damaged.stderr.count("\n") == 1 and "Traceback" not in damaged.stderr
    assert healed.stderr == "" and healed.stdout == first.stdout


def test_an_unexpected_read_error_is_a_miss_with_a_warning(xdg, spec, capsys, monkeypatch):
    good = pipeline.compile_spec(str(spec))

    def eio(*args):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(cache, "_read", eio)
    assert pipeline.compile_spec(str(spec)) == good
    one_warning(capsys, "cannot read cache entry", "Input/output error")


# -- entries that are not our own regular files


def test_a_symlinked_entry_is_not_followed(xdg, spec, tmp_path, capsys, monkeypatch):
    pipeline.compile_spec(str(spec))
    planted = tmp_path / "attacker" / "entry.json"
    planted.parent.mkdir()
    planted.write_bytes(evil_entry(spec, monkeypatch))
    path = xdg / "ebpf-run" / entry_of(spec)
    path.unlink()
    path.symlink_to(planted)
    again = pipeline.compile_spec(str(spec))
    one_warning(capsys, "a symbolic link", "rebuilding it")
    assert "Hello Evil!" not in again.rendered.c
    assert not path.is_symlink() and path.is_file()  # replaced by a rebuilt entry
    assert planted.read_bytes() == evil_entry(spec, monkeypatch)  # the target is untouched


@pytest.mark.parametrize("owner, mode, complaint", [
    pytest.param(NOBODY, 0o666, "belongs to uid 65534", marks=needs_root),
    pytest.param(NOBODY, 0o600, "belongs to uid 65534", marks=needs_root),
    (None, 0o666, "writable by group or others (mode 666)"),
    (None, 0o620, "writable by group or others (mode 620)"),
])
def test_a_foreign_or_writable_entry_is_ignored(owner, mode, complaint, xdg, spec, capsys,
                                                monkeypatch):
    path = xdg / "ebpf-run" / entry_of(spec)
    pipeline.compile_spec(str(spec))
    path.write_bytes(evil_entry(spec, monkeypatch))  # sealed: only ownership stops it
    if owner is not None:
        os.chown(path, owner, owner)
    os.chmod(path, mode)
    again = pipeline.compile_spec(str(spec))
    one_warning(capsys, complaint, "rebuilding it")
    assert "Hello Evil!" not in again.rendered.c
    st = path.stat()
    assert (st.st_uid, st.st_mode & 0o777) == (os.geteuid(), 0o600)


def test_a_fifo_or_directory_entry_is_ignored_without_blocking(xdg, spec, capsys):
    good = pipeline.compile_spec(str(spec))
    path = xdg / "ebpf-run" / entry_of(spec)
    for make, what in ((os.mkfifo, "a FIFO"), (os.mkdir, "a directory")):
        path.unlink()
        make(path)
        assert pipeline.compile_spec(str(spec)) == good  # a FIFO opened to read would hang
        one_warning(capsys, what, "rebuilding it")
        assert path.is_file()
    # A directory that cannot simply be removed: warned about, and the run still works.
    path.unlink()
    (path / "inside").mkdir(parents=True)
    assert pipeline.compile_spec(str(spec)) == good
    one_warning(capsys, "a directory", "cannot remove it")
    assert pipeline.compile_spec(str(spec)) == good
    assert capsys.readouterr().err == ""  # said once per process, not on every compile



def test_repeated_set_keys_on_the_value_applied_the_last(xdg, tmp_path, monkeypatch):
    """`--set pid=2 --set pid=1` traces pid 1; it used to hit the entry of
    `--set pid=1 --set pid=2` (the pairs were sorted into one key) and trace pid 2."""
    spec = tmp_path / "execsnoop.yaml"
    shutil.copy(ROOT / "specs" / "tools" / "execsnoop.yaml", spec)
    for params, pid in (((("pid", "1"), ("pid", "2")), 2), ((("pid", "2"), ("pid", "1")), 1),
                        ((("pid", "7"), ("pid", "1")), 1)):
        got = pipeline.compile_spec(str(spec), params=params)
        assert f"#define er_param_pid ((u32){pid}ULL)" in got.rendered.c, params
    assert len(entries(xdg / "ebpf-run")) == 2  # the third was the second's entry
    k = functools.partial(cache.key, "x.yaml", b"", "x86_64")
    assert k((("pid", "1"), ("pid", "2"))) == k((("pid", "2"),))
    assert k((("pid", "1"), ("pid", "2"))) != k((("pid", "2"), ("pid", "1")))
    # a string parameter's text is keyed exactly, whatever it holds
    assert len({k((("comm", text),)) for text in ("bash", "bash ", "bas", "", "'bash'",
                                                  "bash'), ('x', '1")}) == 6


# -- the directory and its ancestors


def test_a_cache_directory_open_to_others_is_not_used(xdg, capsys):
    (xdg / "ebpf-run").mkdir()
    os.chmod(xdg / "ebpf-run", 0o777)
    assert cache.directory() is None
    one_warning(capsys, f"not using the cache in {xdg / 'ebpf-run'}", "mode 777")


def test_a_group_writable_ancestor_is_refused(xdg, spec, capsys):
    """Whoever can write an ancestor can rename the cache directory away and put theirs."""
    os.chmod(xdg, 0o770)
    pipeline.compile_spec(str(spec))
    one_warning(capsys, f"{xdg} is writable by group or others (mode 770)")
    assert not (xdg / "ebpf-run").exists()
    os.chmod(xdg, 0o1777)  # sticky, like /tmp: others cannot rename what is ours
    assert cache.directory() == str(xdg / "ebpf-run")


@needs_root
def test_root_refuses_a_cache_inside_another_users_tree_and_falls_back(
        xdg, spec, tmp_path, capsys, monkeypatch):
    """`sudo -E` or XDG_CACHE_HOME in a user's home: that user owns an ancestor, so they
    can swap links between any check and any open. Root uses its own home instead."""
    mine = xdg / "ebpf-run"
    mine.mkdir(mode=0o700)  # even a root-owned, closed cache directory does not help
    (mine / entry_of(spec)).write_bytes(evil_entry(spec, monkeypatch))
    os.chown(xdg, NOBODY, NOBODY)
    root_home = tmp_path / "root-home"
    root_home.mkdir(mode=0o700)
    monkeypatch.setattr(cache_dir, "_account_home", lambda: str(root_home))
    got = pipeline.compile_spec(str(spec))
    assert "Hello Evil!" not in got.rendered.c
    assert entries(mine) == [entry_of(spec)]  # nothing read or written there
    assert entries(root_home / ".cache" / "ebpf-run") == [entry_of(spec)]
    assert capsys.readouterr().err == ""  # a safe fall-back, taken on every `sudo -E` run
    # Without a home of root's own to fall back to: no cache, and the reason, once.
    monkeypatch.setattr(cache_dir, "_account_home", lambda: None)
    assert "Hello Evil!" not in pipeline.compile_spec(str(spec)).rendered.c
    one_warning(capsys, f"not using the cache in {mine}: {xdg} belongs to uid 65534")


def test_a_cache_directory_swapped_for_a_link_at_open_time_is_refused(
        xdg, spec, tmp_path, capsys, monkeypatch):
    """The race that made root unpickle a user's file: the directory is looked at (no
    link), then replaced by a link to the attacker's directory before it is opened."""
    pipeline.compile_spec(str(spec))
    attacker = tmp_path / "attacker"
    attacker.mkdir(mode=0o700)
    (attacker / entry_of(spec)).write_bytes(evil_entry(spec, monkeypatch))
    look = cache_dir._link_target

    def look_then_swap(dir_fd, name, path):
        target = look(dir_fd, name, path)
        if path == str(xdg / "ebpf-run") and not (xdg / "ebpf-run").is_symlink():
            os.rename(xdg / "ebpf-run", tmp_path / "moved-away")
            os.symlink(attacker, xdg / "ebpf-run")
        return target

    monkeypatch.setattr(cache_dir, "_link_target", look_then_swap)
    got = pipeline.compile_spec(str(spec))
    assert "Hello Evil!" not in got.rendered.c
    one_warning(capsys, f"{xdg / 'ebpf-run'} is a symbolic link")
    assert entries(attacker) == [entry_of(spec)]  # nothing written through the link


def test_an_ancestor_swapped_for_a_link_at_open_time_is_refused(
        xdg, spec, tmp_path, capsys, monkeypatch):
    pipeline.compile_spec(str(spec))
    attacker = tmp_path / "attacker"
    (attacker / "ebpf-run").mkdir(parents=True, mode=0o700)
    (attacker / "ebpf-run" / entry_of(spec)).write_bytes(evil_entry(spec, monkeypatch))
    look = cache_dir._link_target

    def look_then_swap(dir_fd, name, path):
        target = look(dir_fd, name, path)
        if path == str(xdg) and not (xdg).is_symlink():
            os.rename(xdg, tmp_path / "moved-away")
            os.symlink(attacker, xdg)
        return target

    monkeypatch.setattr(cache_dir, "_link_target", look_then_swap)
    assert "Hello Evil!" not in pipeline.compile_spec(str(spec)).rendered.c
    one_warning(capsys, f"{xdg} is a symbolic link")


def test_a_link_in_the_configured_path_is_followed_when_trusted(xdg, tmp_path, monkeypatch):
    link = tmp_path / "link"
    link.symlink_to(xdg)
    monkeypatch.setenv("XDG_CACHE_HOME", str(link))
    assert cache.directory() == str(link / "ebpf-run")
    assert (xdg / "ebpf-run").is_dir()



def test_a_links_target_is_never_created(xdg, spec, tmp_path, monkeypatch, capsys):
    """Only the configured names are made: a dangling link at the cache base makes nothing
    where it points (realpath used to turn /link -> /etc/nologin into a mkdir there)."""
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "nologin")
    monkeypatch.setenv("XDG_CACHE_HOME", str(link))
    assert pipeline.compile_spec(str(spec)) == fresh(spec, monkeypatch)
    assert not (tmp_path / "nologin").exists() and link.is_symlink()
    assert capsys.readouterr().err == ""  # no cache, nothing unsafe


def planted(tmp_path, monkeypatch):
    """A simulated `sudo -E`: HOME is an unprivileged user's, who made ~/.cache a link to
    a root-owned directory (like /etc) holding what root must neither make nor delete.
    Root's own home is a scratch directory."""
    user_home, etc = tmp_path / "user-home", tmp_path / "etc"
    user_home.mkdir(mode=0o755)
    (etc / "ebpf-run").mkdir(parents=True, mode=0o700)  # root's, closed: passes every check
    for name in ("a" * 64 + ".pickle", "shadow.pickle"):
        (etc / "ebpf-run" / name).write_bytes(b"root's")
    os.chown(user_home, NOBODY, NOBODY)
    root_home = tmp_path / "root-home"
    root_home.mkdir(mode=0o700)
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(user_home))
    monkeypatch.setattr(cache_dir, "_account_home", lambda: str(root_home))
    return user_home, etc, root_home


def untouched(etc):
    return sorted(str(p.relative_to(etc)) for p in etc.rglob("*")) == [
        "ebpf-run", "ebpf-run/" + "a" * 64 + ".pickle", "ebpf-run/shadow.pickle"]


@needs_root
@pytest.mark.parametrize("target", ["etc", "etc/nologin"])
def test_root_follows_no_link_planted_by_a_user_under_sudo_e(target, xdg, spec, tmp_path,
                                                             monkeypatch, capsys):
    """`etc`: root used to write entries into etc/ebpf-run and prune every *.pickle there;
    `etc/nologin`: root used to create that directory. Now the link is never read (its
    directory is the user's), root caches in its own home, and the run is the same."""
    user_home, etc, root_home = planted(tmp_path, monkeypatch)
    (user_home / ".cache").symlink_to(tmp_path / target)
    os.lchown(user_home / ".cache", NOBODY, NOBODY)
    assert pipeline.compile_spec(str(spec)) == fresh(spec, monkeypatch)
    assert untouched(etc)
    assert entries(root_home / ".cache" / "ebpf-run") == [entry_of(spec)]
    assert capsys.readouterr().err == ""  # the fall-back every `sudo -E` run takes
    # No home of root's own: no cache, one line saying why, and the run still works.
    monkeypatch.setattr(cache_dir, "_account_home", lambda: None)
    assert pipeline.compile_spec(str(spec)) == fresh(spec, monkeypatch)
    one_warning(capsys, f"not using the cache in {user_home}/.cache/ebpf-run: "
                        f"{user_home} belongs to uid 65534")
    assert untouched(etc)


@needs_root
def test_root_follows_no_link_of_another_user_in_a_sticky_home(xdg, spec, tmp_path,
                                                                monkeypatch, capsys):
    """HOME=/tmp (some services): /tmp is root's and sticky, so it passes, but a link
    another user planted there is theirs to point anywhere."""
    _, etc, _ = planted(tmp_path, monkeypatch)
    shared = tmp_path / "tmp"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    (shared / ".cache").symlink_to(etc)
    os.lchown(shared / ".cache", NOBODY, NOBODY)
    monkeypatch.setenv("HOME", str(shared))
    monkeypatch.setattr(cache_dir, "_account_home", lambda: None)
    assert pipeline.compile_spec(str(spec)) == fresh(spec, monkeypatch)
    one_warning(capsys, f"{shared}/.cache is a symbolic link of uid 65534")
    assert untouched(etc)
    os.lchown(shared / ".cache", 0, 0)  # root's own link there: followed
    assert cache.directory() == str(shared / ".cache" / "ebpf-run")


def test_links_dot_dot_and_loops_in_the_configured_path(xdg, tmp_path, monkeypatch, capsys):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "up").symlink_to("b/..")  # relative target, walked from a/
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "a" / "up" / ".." / "xdg"))
    assert cache.directory() == str(tmp_path / "a" / "up" / ".." / "xdg" / "ebpf-run")
    assert (tmp_path / "xdg" / "ebpf-run").is_dir()  # a/up is a, so a/up/.. is tmp_path
    (tmp_path / "loop").symlink_to("loop")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "loop"))
    assert cache.directory() is None
    one_warning(capsys, "goes through more than 40 links")


# -- what is created, and where


def test_home_nonexistent_creates_nothing(xdg, spec, monkeypatch, capsys):
    if os.path.exists("/nonexistent"):
        pytest.skip("/nonexistent exists on this machine")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", "/nonexistent")
    assert cache.directory() is None
    pipeline.compile_spec(str(spec))
    assert not os.path.exists("/nonexistent")
    assert capsys.readouterr().err == ""  # nothing unsafe, only no cache


def test_a_relative_xdg_cache_home_is_ignored(xdg, spec, tmp_path, monkeypatch):
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir(mode=0o700)
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")
    monkeypatch.setenv("HOME", str(home))
    pipeline.compile_spec(str(spec))
    assert list(cwd.iterdir()) == []
    assert entries(home / ".cache" / "ebpf-run") == [entry_of(spec)]
    assert (home / ".cache").stat().st_mode & 0o777 == 0o700


def test_missing_directories_are_made_only_in_a_home_of_our_own(xdg, tmp_path, monkeypatch,
                                                                capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "missing" / "xdg"))
    assert cache.directory() is None
    assert not (tmp_path / "missing").exists()
    # The cache base itself is made, as the VM's XDG_CACHE_HOME=/tmp/.cache needs.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "new-xdg"))
    assert cache.directory() == str(tmp_path / "new-xdg" / "ebpf-run")
    assert (tmp_path / "new-xdg").stat().st_mode & 0o777 == 0o700
    # Cannot be made (a read-only home): no cache, and nothing worth a warning.
    with monkeypatch.context() as m:
        m.setenv("XDG_CACHE_HOME", str(tmp_path / "read-only"))
        m.setattr(os, "mkdir", lambda *a, **k: (_ for _ in ()).throw(OSError(30, "EROFS")))
        assert cache.directory() is None
    assert capsys.readouterr().err == ""
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache.directory() is None and not (tmp_path / "home").exists()
    if os.geteuid() == 0:  # a home that is not ours: no .cache made in it
        (tmp_path / "home").mkdir()
        os.chown(tmp_path / "home", NOBODY, NOBODY)
        monkeypatch.setenv("HOME", str(tmp_path / "home"))
        assert cache.directory() is None
        assert list((tmp_path / "home").iterdir()) == []


# -- writing and pruning


def test_pruning_keeps_the_newest_and_follows_no_link(xdg, tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "KEEP", 2)
    outside = tmp_path / "outside.json"
    outside.write_text("keep me")
    d = xdg / "ebpf-run"
    d.mkdir(mode=0o700)
    (d / ("f" * 64 + ".json")).symlink_to(outside)
    (d / ("e" * 64 + ".pickle")).write_bytes(b"\x80\x05.")  # the old format: dropped
    (d / "notes.pickle").write_bytes(b"not the cache's")  # kept: no name the cache writes
    (d / ".tmp-1-0123456789abcdef").write_bytes(b"")  # a dead run's, an hour old: dropped
    os.utime(d / ".tmp-1-0123456789abcdef", (1000, 1000))
    (d / ".tmp-mine").write_bytes(b"")
    os.utime(d / ".tmp-mine", (1000, 1000))
    for i in range(4):
        spec = tmp_path / f"s{i}.yaml"
        shutil.copy(ROOT / "specs" / "hello.yaml", spec)
        pipeline.compile_spec(str(spec))
        os.utime(d / entry_of(spec), (1000 + i, 1000 + i))
    assert sorted(entries(d)) == sorted([entry_of(tmp_path / "s2.yaml"),
                                         entry_of(tmp_path / "s3.yaml"), "f" * 64 + ".json",
                                         "notes.pickle", ".tmp-mine"])
    assert outside.read_text() == "keep me"


@needs_root
def test_pruning_removes_only_files_of_the_effective_user(xdg, spec, tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "KEEP", 1)
    d = xdg / "ebpf-run"
    d.mkdir(mode=0o700)
    theirs = ["0" * 64 + ".json", "1" * 64 + ".pickle", ".tmp-1-0123456789abcdef"]
    for name in theirs:
        (d / name).write_bytes(b"")
        os.chown(d / name, NOBODY, NOBODY)
        os.utime(d / name, (1000, 1000))
    pipeline.compile_spec(str(spec))
    assert entries(d) == sorted([*theirs, entry_of(spec)])


@needs_root
def test_a_cache_directory_of_roots_is_skipped_quietly_by_a_user(xdg, capsys, monkeypatch):
    """Left in a user's home by an earlier `sudo -E`: the user cannot use it, and nobody
    can abuse it, so no warning on every run."""
    (xdg / "ebpf-run").mkdir(mode=0o700)
    monkeypatch.setattr(os, "geteuid", lambda: NOBODY)
    assert cache.directory() is None
    assert capsys.readouterr().err == ""


@needs_root
def test_a_user_creates_nothing_in_a_sticky_directory_not_theirs(xdg, capsys, monkeypatch):
    """XDG_CACHE_HOME=/tmp for a user: only the cache directory and a home's .cache are
    ever made, and only in a directory of the user's own."""
    os.chmod(xdg, 0o1777)  # root's, like /tmp
    monkeypatch.setattr(os, "geteuid", lambda: NOBODY)
    assert cache.directory() is None
    assert list(xdg.iterdir()) == [] and capsys.readouterr().err == ""


def test_a_value_the_codec_cannot_carry_is_not_stored(xdg, capsys):
    cache.store("0" * 64, {"not": "a dataclass"})
    one_warning(capsys, "not caching: ", "not a frozen dataclass")
    assert not (xdg / "ebpf-run").exists()


def test_an_edit_of_ebpf_runs_own_files_changes_the_key(tmp_path, monkeypatch):
    """The key covers ebpf-run's files by name, size and time: a copy of the package whose
    one file is touched gives another fingerprint."""
    pkg = tmp_path / "runner"
    shutil.copytree(ROOT / "runner", pkg, symlinks=False,
                    ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(cache, "PACKAGE", str(pkg))
    cache._tool_fingerprint.cache_clear()
    before = cache._tool_fingerprint()
    cache._tool_fingerprint.cache_clear()
    assert cache._tool_fingerprint() == before
    target = pkg / "codegen" / "render.py"
    os.utime(target, ns=(target.stat().st_atime_ns, target.stat().st_mtime_ns + 1))
    cache._tool_fingerprint.cache_clear()
    assert cache._tool_fingerprint() != before
    cache._tool_fingerprint.cache_clear()
