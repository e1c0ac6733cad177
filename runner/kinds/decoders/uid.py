"""uid -> user name from the password database (NSS), else the number."""

from __future__ import annotations

import pwd
from functools import lru_cache

from runner.kinds.decoders.base import Decoder
from runner.kinds.decoders.text import safe_text


@lru_cache(maxsize=4096)  # NSS may be LDAP: one lookup per uid, not per event
def user_name(uid: int) -> str:
    try:
        name = pwd.getpwuid(uid).pw_name
    except (KeyError, OverflowError):  # no such user; a uid beyond uid_t
        return str(uid)
    # /etc/passwd is not ours: a name with an escape sequence must not reach a terminal.
    return safe_text(name)


UID = Decoder(
    "uid", "int", user_name, keep_raw=True, doc="uid -> user name (0 -> root); unknown: the number"
)
