"""/metrics over HTTP (or HTTPS, see web_config.py) on a background thread, for a registry
from runner.output.prometheus_registry (SpecRegistry, registry_for).

Whoever can connect can use it, so what one client can hold is bounded:

- at most MAX_CONNECTIONS connections at once, one thread each. When all are taken, the one
  that has waited longest without sending a whole request is closed for the newcomer: idle
  connections (a thousand of them exhausted the descriptors and locked Prometheus out) cost
  nothing but their turn, and a scraper always gets in.
- a request must arrive whole within REQUEST_TIMEOUT_S of the connection (a byte every few
  seconds does not keep it open), and an answer must be taken within RESPONSE_TIMEOUT_S;
  every single read or write gives up after IO_TIMEOUT_S.
- accept() failing for want of descriptors (EMFILE, ENFILE) closes the oldest waiting
  connection and pauses accepting for a moment: the thread does not spin on a listening
  socket it cannot serve, and the run goes on.
- one request per connection (HTTP/1.0), GET only, nothing logged per request, and a
  client's own failure (a reset, a bad TLS handshake) never prints a traceback.

The socket is bound by `Listener` before anything is compiled or attached (a port in use
is an error before the probes run), then served once the maps exist. It serves a registry,
whatever it holds: one spec's collectors or several.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import ipaddress
import socket
import socketserver
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any, Callable, Dict, Optional, Tuple
from urllib.parse import urlsplit

from runner.errors import EnvironmentProblem, UsageError

MAX_CONNECTIONS = 64
REQUEST_TIMEOUT_S = 10.0
RESPONSE_TIMEOUT_S = 60.0
IO_TIMEOUT_S = 10.0
EXHAUSTED_PAUSE_S = 0.5
_EXHAUSTED = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
# A scraper's Accept-Encoding asks for gzip; a body smaller than this is sent as it is.
_GZIP_FROM = 1024


def parse_listen(text: str) -> Tuple[str, int]:
    """HOST:PORT, [IPV6]:PORT -> (host, port). `*:PORT` is every interface, as 0.0.0.0."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise UsageError(f"--metrics {text!r}: expected HOST:PORT, e.g. 127.0.0.1:9435")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return ("0.0.0.0" if host == "*" else host), int(port_text)


@dataclass
class _Conn:
    sock: socket.socket
    since: float
    busy: bool = False  # a whole request arrived: it is being answered


class Connections:
    """The connections being served, by descriptor, under one lock: closing happens only
    here, so an eviction never reaches a descriptor already reused by a newer one."""

    def __init__(self, limit: int = MAX_CONNECTIONS,
                 clock: Callable[[], float] = time.monotonic):
        self.limit = limit
        self.clock = clock
        self._conns: Dict[int, _Conn] = {}
        self._lock = threading.Lock()
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._conns)

    def admit(self, sock: socket.socket) -> bool:
        """Room for `sock`, made by closing the longest-waiting idle one if need be; False
        when every connection is being answered (the newcomer is then closed)."""
        with self._lock:
            if len(self._conns) >= self.limit and not self._evict_oldest_idle():
                return False
            self._conns[sock.fileno()] = _Conn(sock, self.clock())
            return True

    def evict_oldest_idle(self) -> bool:
        with self._lock:
            return self._evict_oldest_idle()

    def _evict_oldest_idle(self) -> bool:
        idle = [c for c in self._conns.values() if not c.busy]
        if not idle:
            return False
        oldest = min(idle, key=lambda c: c.since)
        self._shut(oldest)
        self.evicted += 1
        return True

    def busy(self, fd: int) -> None:
        with self._lock:
            conn = self._conns.get(fd)
            if conn is not None:
                conn.busy, conn.since = True, self.clock()

    def reap(self) -> None:
        """Shut what has waited too long; its thread then ends on a closed socket."""
        now = self.clock()
        with self._lock:
            for conn in list(self._conns.values()):
                limit = RESPONSE_TIMEOUT_S if conn.busy else REQUEST_TIMEOUT_S
                if now - conn.since > limit:
                    self._shut(conn)

    def close(self, sock: socket.socket, fd: int) -> None:
        """Forget the connection at `fd` if `sock` is still what it holds, and close
        `sock` (once it is closed, its descriptor may be reused at once)."""
        with self._lock:
            conn = self._conns.get(fd)
            if conn is not None and conn.sock is sock:
                del self._conns[fd]
            with contextlib.suppress(OSError):
                sock.close()

    def replace(self, old_fd: int, sock: socket.socket) -> None:
        """The same descriptor now behind another object (a TLS socket)."""
        with self._lock:
            conn = self._conns.get(old_fd)
            if conn is not None:
                conn.sock = sock

    def shut_all(self) -> None:
        with self._lock:
            for conn in list(self._conns.values()):
                self._shut(conn)

    def _shut(self, conn: _Conn) -> None:
        # shutdown, not close: the handler thread still owns the object and closes it, so
        # the descriptor is not reused before then; its blocked read or write returns now.
        # Forgotten at once, so the next eviction picks another.
        self._conns.pop(conn.sock.fileno(), None)
        with contextlib.suppress(OSError):  # closed by its peer, or never connected
            socket.socket.shutdown(conn.sock, socket.SHUT_RDWR)


App = Callable[[str, Any], Tuple[int, Dict[str, str], bytes]]  # (path, headers) -> answer


class _Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, host: str, port: int, web: Any):
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                       flags=socket.AI_PASSIVE)
            family, _, _, _, sockaddr = infos[0]
            self.address_family = family
            super().__init__((str(sockaddr[0]), port), _Handler)
        except OSError as error:
            raise EnvironmentProblem(
                f"cannot serve metrics on {host}:{port}: {error.strerror or error}; "
                "choose another --metrics HOST:PORT"
            ) from None
        self.web = web
        self.app: Optional[App] = None
        self.conns = Connections()
        self.exhausted = 0  # accept() failures for want of descriptors
        self.on_exhausted: Callable[[], None] = lambda: None

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6:
            # "::" is every interface of both families, as 0.0.0.0 and :: are elsewhere.
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()

    def get_request(self) -> Tuple[socket.socket, Any]:
        try:
            return self.socket.accept()
        except OSError as error:
            if error.errno in _EXHAUSTED:
                # The waiting connection stays in the backlog and the socket stays
                # readable: without the pause, select() and accept() would spin.
                self.exhausted += 1
                self.conns.evict_oldest_idle()
                if self.exhausted == 1:
                    self.on_exhausted()
                time.sleep(EXHAUSTED_PAUSE_S)
            raise

    def verify_request(self, request: Any, client_address: Any) -> bool:
        request.settimeout(IO_TIMEOUT_S)
        return self.app is not None and self.conns.admit(request)

    def finish_request(self, request: Any, client_address: Any) -> None:
        fd = request.fileno()
        try:
            if self.web is not None and self.web.tls is not None:
                request = self.web.tls.wrap_socket(request, server_side=True)
                self.conns.replace(fd, request)  # the same descriptor, now TLS
            _Handler(request, client_address, self)
        finally:
            with contextlib.suppress(OSError):
                request.shutdown(socket.SHUT_WR)
            self.conns.close(request, fd)

    def shutdown_request(self, request: Any) -> None:
        """Closes what verify_request refused; what was served is closed already."""
        self.conns.close(request, request.fileno())

    def service_actions(self) -> None:
        self.conns.reap()  # every poll of serve_forever (0.5 s)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client's failure (reset, timeout, bad handshake) is its own: no traceback."""


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"
    timeout = IO_TIMEOUT_S

    def parse_request(self) -> bool:
        ok = super().parse_request()
        if ok:
            self.server.conns.busy(self.connection.fileno())
        return ok

    def do_GET(self) -> None:
        assert self.server.app is not None
        try:
            status, headers, body = self.server.app(self.path, self.headers)
        except Exception:  # a collector's bug: the scraper sees the scrape fail, not a reset
            status, headers, body = 500, {"Content-Type": "text/plain"}, b"scrape failed\n"
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Nothing per request: stderr is the run's."""


def metrics_app(registry: Any, web: Any) -> App:
    """/metrics (and /) in the format the scraper's Accept asks for, gzipped if it may be."""
    from prometheus_client.exposition import choose_encoder

    def app(path: str, headers: Any) -> Tuple[int, Dict[str, str], bytes]:
        if web is not None and not web.allows(headers.get("Authorization")):
            return 401, {"WWW-Authenticate": 'Basic realm="ebpf-run"',
                         "Content-Type": "text/plain"}, b"Unauthorized\n"
        if urlsplit(path).path not in ("/metrics", "/"):
            return 404, {"Content-Type": "text/plain"}, b"Not Found: see /metrics\n"
        encoder, content_type = choose_encoder(headers.get("Accept") or "")
        body = encoder(registry)
        out = {"Content-Type": content_type}
        if "gzip" in (headers.get("Accept-Encoding") or "") and len(body) >= _GZIP_FROM:
            body = gzip.compress(body, compresslevel=1)
            out["Content-Encoding"] = "gzip"
        return 200, out, body

    return app


class Listener:
    """The bound socket, before anything is served: `ebpf-run --metrics` opens it before the
    compile, so a port in use is an error before a probe is attached."""

    def __init__(self, host: str, port: int, web: Any = None):
        self.host = host
        self.server = _Server(host, port, web)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def address(self) -> str:
        return str(self.server.server_address[0])

    def beyond_loopback(self) -> bool:
        """Whether anyone but this machine can connect: every interface, or any address
        that is not a loopback one."""
        try:
            return not ipaddress.ip_address(self.address.split("%")[0]).is_loopback
        except ValueError:
            return True

    def exposure(self) -> Optional[str]:
        """The line to print when the socket is reachable from elsewhere, else None."""
        if not self.beyond_loopback():
            return None
        web = self.server.web
        where = f"{self.host or '*'}:{self.port}"
        if web is not None and web.tls is not None and web.users:
            return (f"warning: /metrics on {where} is reachable beyond this machine "
                    "(TLS and basic auth from --metrics-web-config)")
        missing = " and ".join(
            what for what, there in (("TLS", web is not None and web.tls is not None),
                                     ("basic auth", web is not None and bool(web.users)))
            if not there)
        return (f"WARNING: /metrics on {where} is reachable beyond this machine, without "
                f"{missing}: anyone who can connect reads what the probes see. Bind "
                "127.0.0.1, or protect it with --metrics-web-config (docs/spec.md)")

    def close(self) -> None:
        self.server.server_close()


def listen(address: str, web_config: Optional[str] = None) -> Listener:
    """The --metrics socket, bound before the compile (a port in use fails before anything
    is attached), with --metrics-web-config's TLS and basic auth."""
    from runner.output.web_config import load

    host, port = parse_listen(address)
    web = load(web_config) if web_config else None
    return Listener(host, port, web)


class MetricsServer:
    """/metrics on a background thread; stop() closes the socket, every connection, and
    joins the thread.

    with MetricsServer(registry, "127.0.0.1", 0) as server: server.port ...
    MetricsServer(registry, listener=Listener(...)).start()    bound beforehand"""

    def __init__(self, registry: Any, host: str = "127.0.0.1", port: int = 0,
                 web: Any = None, listener: Optional[Listener] = None):
        self.registry = registry
        self.host, self.requested_port, self.web = host, port, web
        self.listener = listener
        self._server: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("metrics server is not running")
        return int(self._server.server_address[1])

    @property
    def connections(self) -> Connections:
        assert self._server is not None
        return self._server.conns

    def start(self, on_exhausted: Callable[[], None] = lambda: None) -> MetricsServer:
        if self.listener is None:
            self.listener = Listener(self.host, self.requested_port, self.web)
        server = self.listener.server
        server.app = metrics_app(self.registry, server.web)
        server.on_exhausted = on_exhausted
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="metrics",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.conns.shut_all()
            self._server = None
        if self.listener is not None:
            self.listener.close()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> MetricsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
