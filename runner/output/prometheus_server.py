"""/metrics over HTTP on a background thread, for a registry from
runner.output.prometheus.registry_for."""

from __future__ import annotations

import threading
from typing import Optional, Tuple
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server

from runner.errors import EnvironmentProblem, UsageError


def parse_listen(text: str) -> Tuple[str, int]:
    """HOST:PORT, [IPV6]:PORT -> (host, port)."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise UsageError(f"--metrics {text!r}: expected HOST:PORT, e.g. 127.0.0.1:9435")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port_text)


class MetricsServer:
    """/metrics on a background thread; stop() closes the socket and joins the thread.

    with MetricsServer(registry, "127.0.0.1", 0) as server: server.port ..."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int):
        self.registry = registry
        self.host = host
        self.requested_port = port
        self._server: Optional[WSGIServer] = None
        self._thread: Optional[threading.Thread] = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("metrics server is not running")
        return int(self._server.server_port)

    def start(self) -> MetricsServer:
        try:
            server, thread = start_http_server(self.requested_port, self.host, self.registry)
        except OSError as error:
            raise EnvironmentProblem(
                f"cannot serve metrics on {self.host}:{self.requested_port}: {error.strerror}; "
                "choose another --metrics HOST:PORT"
            ) from error
        self._server, self._thread = server, thread
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> MetricsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
