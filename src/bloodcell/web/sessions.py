"""Server-side sessions and known-device cookies.

The browser's signed cookie holds only a random session id; who it belongs to,
when it started and when it was last used live here, in the web app's process.
So a session ends for good the moment it is signed out, idles past
``WEB_SESSION_IDLE_MINUTES``, outlives ``WEB_SESSION_MAX_HOURS``, or its account
changes (removed, new roles, new password: the fingerprint no longer matches).
A restart ends every session. The table is bounded: past ``max_sessions`` the
least recently used session ends.

A device cookie marks a browser that once signed in to an account with the
right password. It opens nothing by itself; it only lets that browser's
sign-ins be counted apart from a flood against the same account or address.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bloodcell.web.accounts import Account

DEVICE_COOKIE = "bloodcell-device"
DEVICE_DAYS = 180
_DEVICE_NAMES = 8  # accounts one browser is remembered for


@dataclass
class Session:
    name: str
    fingerprint: str
    created: float
    last_seen: float


class SessionStore:
    def __init__(
        self,
        idle: float,
        lifetime: float,
        max_sessions: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.idle, self.lifetime, self.max_sessions = idle, lifetime, max_sessions
        self._clock = clock
        self._sessions: OrderedDict[str, Session] = OrderedDict()  # least recently used first
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._sessions)

    def open(self, account: Account) -> str:
        sid = secrets.token_urlsafe(32)
        now = self._clock()
        with self._lock:
            self._sessions[sid] = Session(account.name, account.fingerprint, now, now)
            while len(self._sessions) > self.max_sessions:
                self._sessions.popitem(last=False)
        return sid

    def resolve(self, sid: object, accounts: Mapping[str, Account], touch: bool = True) -> Account | None:
        """The session's account as it is now, or None (and the session ended) if it is over."""
        if not isinstance(sid, str):
            return None
        now = self._clock()
        with self._lock:
            session = self._sessions.get(sid)
            if session is None:
                return None
            account = accounts.get(session.name)
            if (
                account is None
                or account.fingerprint != session.fingerprint
                or now - session.last_seen > self.idle
                or now - session.created > self.lifetime
            ):
                del self._sessions[sid]
                return None
            if touch:
                session.last_seen = now
                self._sessions.move_to_end(sid)
            return account

    def end(self, sid: object) -> None:
        if isinstance(sid, str):
            with self._lock:
                self._sessions.pop(sid, None)


def _name_tag(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:16]


class DeviceCookies:
    """``bloodcell-device``: a signed, random device id and the accounts it signed in to."""

    def __init__(self, secret: str) -> None:
        from itsdangerous import URLSafeTimedSerializer

        self._serializer = URLSafeTimedSerializer(secret, salt="bloodcell-device")

    def _load(self, cookie: str | None) -> dict[str, Any] | None:
        from itsdangerous import BadData

        if not cookie or len(cookie) > 2048:
            return None
        try:
            data = self._serializer.loads(cookie, max_age=DEVICE_DAYS * 86400)
        except BadData:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("d"), str):
            return None
        if not isinstance(data.get("n"), list):
            return None
        return data

    def device_for(self, cookie: str | None, name: str) -> str | None:
        """The device id, if this browser signed in to ``name`` before; else None."""
        data = self._load(cookie)
        if data is None or _name_tag(name) not in data["n"]:
            return None
        return str(data["d"])

    def remember(self, cookie: str | None, name: str) -> str:
        """The cookie to set after a right password: the same device, this account added."""
        data = self._load(cookie) or {"d": secrets.token_urlsafe(16), "n": []}
        tags = [t for t in data["n"] if t != _name_tag(name)] + [_name_tag(name)]
        return self._serializer.dumps({"d": data["d"], "n": tags[-_DEVICE_NAMES:]})
