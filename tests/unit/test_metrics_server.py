"""The /metrics server against clients that do not behave: idle and slow connections, a
flood, descriptors running out; the loud line beyond loopback; TLS and basic auth from a
web config file in exporter-toolkit's format. No BPF: a fixed registry is served."""

from __future__ import annotations

import base64
import errno
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import List

import pytest

from runner.errors import EnvironmentProblem, UsageError
from runner.kernel.bcc import CapturedStderr
from runner.output import prometheus_server as ps
from runner.output.prometheus import SpecCollector
from runner.output.prometheus_registry import registry_for
from runner.output.prometheus_server import Connections, Listener, MetricsServer, listen
from runner.output.web_config import load

from .test_prometheus import LATENCY, OPEN, SYSCALLS, demo_read, status


def registry():
    return registry_for([(SpecCollector("demo", [SYSCALLS, LATENCY, OPEN], demo_read), status)])


def get(url: str, **kw) -> str:
    with urllib.request.urlopen(url, timeout=10, **kw) as reply:
        return reply.read().decode()


@pytest.mark.slow  # seconds of waiting or subprocesses: the full tier
def test_idle_connections_beyond_the_cap_close_the_oldest_and_scrapes_get_in():
    with MetricsServer(registry(), "127.0.0.1", 0) as server:
        idle = [socket.create_connection(("127.0.0.1", server.port), timeout=10)
                for _ in range(3 * ps.MAX_CONNECTIONS)]
        try:
            for _ in range(3):
                assert "syscalls_total" in get(f"http://127.0.0.1:{server.port}/metrics")
            assert len(server.connections) <= ps.MAX_CONNECTIONS
            # The first ones were closed for the later ones: they read an EOF.
            idle[0].settimeout(10)
            assert idle[0].recv(1) == b""
        finally:
            for s in idle:
                s.close()


def test_a_slow_request_is_cut_at_its_deadline_and_an_answer_too():
    now = [0.0]
    conns = Connections(limit=4, clock=lambda: now[0])
    a, b = socket.socketpair()
    c, d = socket.socketpair()
    try:
        assert conns.admit(a) and conns.admit(c)
        conns.busy(c.fileno())
        now[0] = ps.REQUEST_TIMEOUT_S + 1  # a byte now and then does not extend it
        conns.reap()
        b.settimeout(5)
        assert b.recv(1) == b"" and len(conns) == 1  # the idle one is shut
        now[0] = ps.RESPONSE_TIMEOUT_S + 2
        conns.reap()
        assert len(conns) == 0
    finally:
        for s in (a, b, c, d):
            s.close()


def test_when_every_connection_is_answering_a_newcomer_is_refused():
    conns = Connections(limit=1)
    pairs = [socket.socketpair() for _ in range(2)]
    try:
        assert conns.admit(pairs[0][0])
        conns.busy(pairs[0][0].fileno())
        assert not conns.admit(pairs[1][0])
    finally:
        for x, y in pairs:
            x.close()
            y.close()


class _Exhausted:
    """A listening socket whose accept() fails as it does without descriptors."""

    def __init__(self, real):
        self.real, self.calls = real, 0

    def fileno(self):
        return self.real.fileno()

    def accept(self):
        self.calls += 1
        raise OSError(errno.EMFILE, "Too many open files")

    def close(self):
        self.real.close()


@pytest.mark.slow  # seconds of waiting or subprocesses: the full tier
def test_emfile_pauses_accepting_instead_of_spinning(monkeypatch):
    monkeypatch.setattr(ps, "EXHAUSTED_PAUSE_S", 0.2)
    said: List[str] = []
    server = MetricsServer(registry(), "127.0.0.1", 0)
    server.start(on_exhausted=lambda: said.append("exhausted"))
    try:
        fake = _Exhausted(server._server.socket)
        server._server.socket = fake
        waiting = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        time.sleep(1.0)
        # A spin calls accept() tens of thousands of times a second; the pause, five.
        assert 1 <= fake.calls <= 10
        assert said == ["exhausted"]
        waiting.close()
    finally:
        server.stop()


def test_capturing_stderr_without_descriptors_lets_the_work_happen(monkeypatch):
    import tempfile

    def no_file(*a, **kw):
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(tempfile, "TemporaryFile", no_file)
    done = []
    with CapturedStderr() as err:
        done.append(1)
    assert (done, err.text) == ([1], "")


@pytest.mark.parametrize("host,loud", [("127.0.0.1", False), ("localhost", False),
                                       ("0.0.0.0", True), ("*", True), ("0", True),
                                       ("::", True), ("::1", False)])
def test_a_line_says_when_metrics_are_reachable_beyond_this_machine(host, loud):
    if ":" in host and not socket.has_ipv6:
        pytest.skip("no IPv6")
    listener = listen(f"[{host}]:0" if ":" in host else f"{host}:0")
    try:
        line = listener.exposure()
    finally:
        listener.close()
    assert (line is not None) == loud
    if loud:
        assert line.startswith("WARNING: /metrics on ") and "without TLS and basic auth" in line


def test_a_port_in_use_is_an_environment_problem_at_bind_time():
    first = Listener("127.0.0.1", 0)
    try:
        with pytest.raises(EnvironmentProblem, match="choose another --metrics HOST:PORT"):
            Listener("127.0.0.1", first.port)
    finally:
        first.close()


# ---- --metrics-web-config ------------------------------------------------------------


def certificate(tmp: Path) -> None:
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(tmp / "server.key"), "-out", str(tmp / "server.crt")],
                   check=True, capture_output=True, timeout=60)


def bcrypt_hash(password: str) -> str:
    bcrypt = pytest.importorskip("bcrypt")
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()


def auth(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_tls_and_basic_auth_from_an_exporter_toolkit_web_config(tmp_path):
    certificate(tmp_path)
    (tmp_path / "web.yml").write_text(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
        f"basic_auth_users:\n  prometheus: '{bcrypt_hash('s3cret')}'\n")
    web = load(str(tmp_path / "web.yml"))
    listener = Listener("0.0.0.0", 0, web)
    assert listener.exposure() == (f"warning: /metrics on 0.0.0.0:{listener.port} is reachable "
                                   "beyond this machine (TLS and basic auth from "
                                   "--metrics-web-config)")
    ctx = ssl.create_default_context(cafile=str(tmp_path / "server.crt"))
    url = f"https://127.0.0.1:{listener.port}/metrics"
    with MetricsServer(registry(), listener=listener).start():
        with pytest.raises(urllib.error.HTTPError) as refused:
            get(url, context=ctx)
        assert refused.value.code == 401
        with pytest.raises(urllib.error.HTTPError) as wrong:
            get_with(url, ctx, auth("prometheus", "guess"))
        assert wrong.value.code == 401
        with pytest.raises(urllib.error.HTTPError) as nobody:
            get_with(url, ctx, auth("root", "s3cret"))
        assert nobody.value.code == 401
        assert "syscalls_total" in get_with(url, ctx, auth("prometheus", "s3cret"))
        # Plain HTTP on the TLS port is a failed handshake, not a traceback or a stuck slot.
        with pytest.raises(Exception):  # noqa: B017  (a reset or a bad status line)
            get(f"http://127.0.0.1:{listener.port}/metrics")
        assert "syscalls_total" in get_with(url, ctx, auth("prometheus", "s3cret"))


def get_with(url: str, ctx, headers: dict) -> str:
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=10, context=ctx) as reply:
        return reply.read().decode()


@pytest.mark.parametrize("text,error,message", [
    ("tls_server_config: {cert_file: a}\n", UsageError, "tls_server_config needs key_file"),
    ("http_server_config: {http2: true}\n", UsageError,
     "unknown key 'http_server_config'; known: basic_auth_users, tls_server_config"),
    ("tls_server_config: {cert_file: a, key_file: b, cipher_suites: []}\n", UsageError,
     "unknown tls_server_config key 'cipher_suites'"),
    ("basic_auth_users: {prometheus: plain}\n", UsageError,
     "user 'prometheus' needs a bcrypt hash"),
    ("tls_server_config: {cert_file: missing.crt, key_file: missing.key}\n",
     EnvironmentProblem, "cannot load the TLS certificate, key or CA"),
    ("tls_server_config: {cert_file: a, key_file: b, client_auth_type: VerifyClientCertIfGiven}\n",
     UsageError, "client_auth_type 'VerifyClientCertIfGiven' is not one of NoClientCert, "
     "RequireAndVerifyClientCert"),
    ("[1, 2]\n", UsageError, "the file must be a mapping"),
])
def test_a_web_config_asks_for_nothing_it_does_not_get(tmp_path, text, error, message):
    (tmp_path / "web.yml").write_text(text)
    with pytest.raises(error, match=message):
        load(str(tmp_path / "web.yml"))


def test_a_missing_web_config_is_an_environment_problem(tmp_path):
    with pytest.raises(EnvironmentProblem, match="No such file"):
        load(str(tmp_path / "none.yml"))


def test_overlapping_scrapes_are_answered(tmp_path):
    with MetricsServer(registry(), "127.0.0.1", 0) as server:
        got: List[str] = []
        threads = [threading.Thread(target=lambda: got.append(
            get(f"http://127.0.0.1:{server.port}/metrics"))) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert len(got) == 8 and all("syscalls_total" in g for g in got)


def test_the_web_config_is_refused_before_anything_runs(tmp_path, capsys):
    from runner.cli import main as cli

    (tmp_path / "web.yml").write_text("tls_server_config: {cert_file: a}\n")
    assert cli.main(["run", "specs/tools/syscount.yaml", "--metrics", "127.0.0.1:0",
                     "--metrics-web-config", str(tmp_path / "web.yml")]) == 2
    assert capsys.readouterr().err == (
        f"ebpf-run: error: --metrics-web-config {tmp_path / 'web.yml'}: tls_server_config "
        "needs key_file\n")
    assert cli.main(["run", "specs/tools/syscount.yaml",
                     "--metrics-web-config", str(tmp_path / "web.yml")]) == 2
    assert capsys.readouterr().err == (
        "ebpf-run: error: --metrics-web-config protects --metrics: give --metrics HOST:PORT\n")
