"""`--metrics-web-config FILE`: TLS and basic auth for /metrics, in the format of Prometheus'
own exporter-toolkit (what node_exporter and ebpf_exporter take with --web.config.file), so
one file and one scrape configuration serve them all:

    tls_server_config:
      cert_file: server.crt        # relative paths are relative to this file
      key_file: server.key
      client_ca_file: ca.crt       # optional: with client_auth_type below
      client_auth_type: RequireAndVerifyClientCert   # or NoClientCert (the default)
      min_version: TLS12           # or TLS13 (default TLS12)
    basic_auth_users:
      prometheus: $2b$12$...       # bcrypt hashes: htpasswd -nBC 12 "" | tr -d ':\\n'

Anything else in the file is refused rather than ignored: a protection the file asks for and
that is not given would be worse than an error. Hashes are checked with the bcrypt module
(Debian's python3-bcrypt, which scripts/setup installs); a password that matched once is
remembered by its SHA-256 for the rest of the run, as exporter-toolkit caches it, so each
scrape does not pay bcrypt's deliberate cost.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Set, Tuple

import yaml

from runner.errors import EnvironmentProblem, UsageError

_TOP = {"tls_server_config", "basic_auth_users"}
_TLS = {"cert_file", "key_file", "client_ca_file", "client_auth_type", "min_version"}
_CLIENT_AUTH = {"NoClientCert": ssl.CERT_NONE, "RequireAndVerifyClientCert": ssl.CERT_REQUIRED}
_VERSIONS = {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
_BCRYPT = re.compile(r"\$2[aby]?\$\d\d\$[./A-Za-z0-9]{53}")
# Checked when the user is unknown, so a wrong name costs the time a wrong password does.
_DUMMY = b"$2b$10$" + b"." * 53
_REMEMBERED = 64  # successful credentials remembered; more only cost a bcrypt check again


@dataclass(frozen=True)
class WebConfig:
    path: str
    tls: Optional[ssl.SSLContext] = None
    users: Mapping[str, bytes] = field(default_factory=dict)  # name -> bcrypt hash
    _ok: Set[bytes] = field(default_factory=set, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, compare=False)

    def allows(self, authorization: Optional[str]) -> bool:
        """Whether a request with this Authorization header may read /metrics."""
        if not self.users:
            return True
        user, password = _basic(authorization)
        if user is None or password is None:
            return False
        token = hashlib.sha256(f"{user}\0{password}".encode()).digest()
        with self._lock:
            if token in self._ok:
                return True
        import bcrypt  # present: load() checked

        hashed = self.users.get(user)
        ok = bcrypt.checkpw(password.encode(), hashed or _DUMMY) and hashed is not None
        if ok:
            with self._lock:
                if len(self._ok) < _REMEMBERED:
                    self._ok.add(token)
        return bool(ok)


def _basic(header: Optional[str]) -> Tuple[Optional[str], Optional[str]]:
    scheme, _, value = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return None, None
    try:
        text = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    user, sep, password = text.partition(":")
    return (user, password) if sep else (None, None)


def load(path: str) -> WebConfig:
    """The file at `path`, checked whole; UsageError for what it says, EnvironmentProblem
    for what cannot be read or loaded."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except OSError as e:
        raise EnvironmentProblem(f"--metrics-web-config {path}: {e.strerror or e}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise UsageError(f"--metrics-web-config {path}: not YAML: {e}") from None
    raw = {} if raw is None else raw
    _keys(path, "", raw, _TOP)
    base = Path(path).parent
    tls = _tls(path, base, raw.get("tls_server_config"))
    users = _users(path, raw.get("basic_auth_users"))
    return WebConfig(path, tls, users)


def _keys(path: str, where: str, value: Any, known: Set[str]) -> None:
    if not isinstance(value, dict):
        raise UsageError(f"--metrics-web-config {path}: {where or 'the file'} must be a mapping")
    unknown = sorted(str(k) for k in value if k not in known)
    if unknown:
        raise UsageError(f"--metrics-web-config {path}: unknown {where + ' ' if where else ''}"
                         f"key {unknown[0]!r}; known: {', '.join(sorted(known))}")


def _tls(path: str, base: Path, raw: Any) -> Optional[ssl.SSLContext]:
    if raw is None:
        return None
    _keys(path, "tls_server_config", raw, _TLS)
    for key in ("cert_file", "key_file"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise UsageError(f"--metrics-web-config {path}: tls_server_config needs {key}")
    auth = raw.get("client_auth_type", "NoClientCert")
    version = raw.get("min_version", "TLS12")
    for key, value, choices in (("client_auth_type", auth, _CLIENT_AUTH),
                                ("min_version", version, _VERSIONS)):
        if value not in choices:
            raise UsageError(f"--metrics-web-config {path}: {key} {value!r} is not one of "
                             f"{', '.join(choices)}")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = _VERSIONS[version]
    ctx.verify_mode = _CLIENT_AUTH[auth]
    ca = raw.get("client_ca_file")
    if (ca is None) != (auth == "NoClientCert"):
        raise UsageError(f"--metrics-web-config {path}: client_ca_file and "
                         "client_auth_type: RequireAndVerifyClientCert go together")
    try:
        ctx.load_cert_chain(base / raw["cert_file"], base / raw["key_file"])
        if ca is not None:
            ctx.load_verify_locations(base / str(ca))
    except (OSError, ssl.SSLError) as e:
        raise EnvironmentProblem(f"--metrics-web-config {path}: cannot load the TLS "
                                 f"certificate, key or CA: {e}") from None
    return ctx


def _users(path: str, raw: Any) -> Dict[str, bytes]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not raw:
        raise UsageError(f"--metrics-web-config {path}: basic_auth_users must map user "
                         "names to bcrypt hashes")
    users: Dict[str, bytes] = {}
    for name, hashed in raw.items():
        if not isinstance(name, str) or ":" in name or not isinstance(hashed, str) or \
                not _BCRYPT.fullmatch(hashed):
            raise UsageError(f"--metrics-web-config {path}: basic_auth_users: user {name!r} "
                             "needs a bcrypt hash ($2b$...) and a name without ':'")
        users[name] = hashed.encode()
    try:
        import bcrypt  # noqa: F401  (used per request; checked here, before anything runs)
    except ImportError:
        raise EnvironmentProblem(
            f"--metrics-web-config {path}: basic_auth_users needs the bcrypt module: "
            "apt-get install python3-bcrypt (or pip install bcrypt)") from None
    return users
