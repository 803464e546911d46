"""Who is using the web app: the one interface pages ask, whatever signs people in.

Pages call ``current_user()`` and check ``User.has(role)``; they never look at
sessions, headers or tokens themselves, so the sign-in mechanism (none on a
loopback stack, built-in accounts, or Identity-Aware Proxy) can change without
touching them.

The mechanism follows from where the app listens: on loopback only the person at
the keyboard can reach it, so nobody signs in; anywhere else every request
needs a session (``web.signin`` enforces it). Built-in accounts come from a secret
(``WEB_ACCOUNTS`` or the file ``WEB_ACCOUNTS_FILE``), one ``name:roles:argon2-hash``
line each, made by ``bloodcell user add``; behind IAP the app trusts only the
signed JWT assertion IAP adds, verified against Google's public keys.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bloodcell.errors import ConfigurationError

if TYPE_CHECKING:
    from bloodcell.settings import Settings

USER = "user"
REVIEWER = "reviewer"
ROLES = (USER, REVIEWER)
LOOPBACK = ("127.0.0.1", "::1", "localhost")
SESSION_KEY = "bloodcell-user"


@dataclass(frozen=True)
class User:
    name: str
    roles: frozenset[str]

    def has(self, role: str) -> bool:
        return role in self.roles


# The person at the keyboard of a loopback-only stack: nobody else can reach it.
LOCAL_USER = User("local", frozenset(ROLES))


class NotSignedIn(PermissionError):
    """The request carries no valid session (or IAP assertion)."""


class Mode(StrEnum):
    LOCAL = "local"  # loopback: no sign-in
    ACCOUNTS = "accounts"  # built-in accounts, signed session cookie
    IAP = "iap"  # Identity-Aware Proxy's signed assertion


# ---- built-in accounts ----


@dataclass(frozen=True)
class Account:
    name: str
    roles: frozenset[str]
    password_hash: str


def parse_accounts(text: str, origin: str) -> dict[str, Account]:
    """``name:roles:hash`` lines (roles comma-separated); errors name the line, never its content."""
    accounts: dict[str, Account] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep1, rest = line.partition(":")
        roles_text, sep2, password_hash = rest.partition(":")
        roles = frozenset(r.strip() for r in roles_text.split(",") if r.strip())
        if not (sep1 and sep2 and name.strip() and password_hash.startswith("$argon2")):
            raise ConfigurationError(
                f"{origin} line {number} must read name:roles:$argon2id$... (made by `bloodcell user add`)"
            )
        if unknown := roles - set(ROLES):
            raise ConfigurationError(
                f"{origin} line {number}: unknown role {sorted(unknown)}; roles: {ROLES}"
            )
        accounts[name.strip()] = Account(name.strip(), roles | {USER}, password_hash)
    return accounts


def load_accounts(inline: str, file: Path | None) -> dict[str, Account]:
    accounts = parse_accounts(inline, "WEB_ACCOUNTS")
    if file is not None:
        try:
            text = file.read_text()
        except OSError as exc:
            raise ConfigurationError(f"WEB_ACCOUNTS_FILE {file} cannot be read: {exc.strerror}") from exc
        accounts |= parse_accounts(text, "WEB_ACCOUNTS_FILE")
    return accounts


def hash_line(name: str, password: str, roles: tuple[str, ...] = ()) -> str:
    """The account line ``bloodcell user add`` prints: the password itself is never stored."""
    from argon2 import PasswordHasher

    if not name or any(c in name for c in ":\n\r") or not name.isprintable():
        raise ValueError("a user name may not be empty or hold ':' or control characters")
    if unknown := set(roles) - set(ROLES):
        raise ValueError(f"unknown role {sorted(unknown)}; roles: {', '.join(ROLES)}")
    role_text = ",".join(sorted({USER, *roles}))
    return f"{name}:{role_text}:{PasswordHasher().hash(password)}"


class TooManyAttempts(PermissionError):
    def __init__(self, retry_after: float) -> None:
        super().__init__(f"too many failed sign-ins: try again in {retry_after:.0f} s")
        self.retry_after = retry_after


class Accounts:
    """Password checks, with failed attempts limited per name and per client address."""

    def __init__(self, accounts: Mapping[str, Account], max_failures: int = 5, window: float = 300.0) -> None:
        from argon2 import PasswordHasher

        self._accounts = dict(accounts)
        self._hasher = PasswordHasher()
        # checked for unknown names too, so timing does not tell which names exist
        self._dummy = self._hasher.hash("not a password of anyone")
        self._max, self._window = max_failures, window
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.setdefault(key, deque())
        while times and now - times[0] > self._window:
            times.popleft()
        return times

    def check(self, name: str, password: str, client: str) -> User | None:
        """The user for a right password; None for a wrong one; TooManyAttempts when limited."""
        from argon2.exceptions import Argon2Error, InvalidHashError

        keys = (f"name:{name.lower()}", f"client:{client}")
        now = time.monotonic()
        with self._lock:
            blocked = [self._recent(k, now) for k in keys if len(self._recent(k, now)) >= self._max]
            if blocked:
                raise TooManyAttempts(max(self._window - (now - times[0]) for times in blocked))
        account = self._accounts.get(name)
        try:
            ok: bool = self._hasher.verify(account.password_hash if account else self._dummy, password)
        except (Argon2Error, InvalidHashError):
            ok = False
        if ok and account is not None:
            return User(account.name, account.roles)
        with self._lock:
            for key in keys:
                self._recent(key, now).append(now)
        return None


# ---- Identity-Aware Proxy ----

IAP_HEADER = "x-goog-iap-jwt-assertion"
IAP_ISSUER = "https://cloud.google.com/iap"


class IapVerifier:
    """IAP's ``x-goog-iap-jwt-assertion``: ES256, Google's keys, our audience, IAP's issuer.

    A bare ``x-goog-authenticated-user-email`` header is never trusted: anything
    reaching the container around IAP could set it.
    """

    def __init__(self, audience: str, keys_url: str, reviewers: tuple[str, ...] = ()) -> None:
        import jwt

        if not audience:
            raise ConfigurationError("IAP_AUDIENCE is required with WEB_AUTH=iap (see terraform/iap.tf)")
        self._audience = audience
        self._keys = jwt.PyJWKClient(keys_url, cache_keys=True, lifespan=3600)
        self._reviewers = {r.lower() for r in reviewers}

    def verify(self, assertion: str | None) -> User:
        import jwt

        if not assertion:
            raise NotSignedIn("no IAP assertion: the request did not come through Identity-Aware Proxy")
        try:
            key = self._keys.get_signing_key_from_jwt(assertion)
            claims: dict[str, Any] = jwt.decode(
                assertion,
                key.key,
                algorithms=["ES256"],
                audience=self._audience,
                issuer=IAP_ISSUER,
                options={"require": ["exp", "iat", "aud", "iss", "email"]},
                leeway=30,
            )
        except jwt.PyJWTError as exc:
            raise NotSignedIn(f"IAP assertion refused: {exc}") from exc
        email = str(claims["email"]).removeprefix("accounts.google.com:")
        roles = {USER, REVIEWER} if email.lower() in self._reviewers else {USER}
        return User(email, frozenset(roles))


# ---- the current request's user ----


@dataclass
class _State:
    mode: Mode = Mode.LOCAL


STATE = _State()


def mode_for(host: str, requested: str) -> Mode:
    """Loopback needs no account; anywhere else, built-in accounts unless IAP is asked for."""
    if host in LOOPBACK:
        return Mode.LOCAL
    return Mode.IAP if requested == "iap" else Mode.ACCOUNTS


def check_config(settings: Settings) -> tuple[Mode, dict[str, Account]]:
    """The sign-in mode and accounts, or a ConfigurationError naming what is missing.

    ``serve`` calls this before starting anything, so a stack that could never
    let anyone in says why instead of starting a web app that exits.
    """
    mode = mode_for(settings.host, settings.web_auth)
    if mode is not Mode.LOCAL and not settings.storage_secret:
        raise ConfigurationError(
            f"STORAGE_SECRET is required when the web app listens on {settings.host} (sign-in is on): "
            "it signs the session cookies"
        )
    accounts: dict[str, Account] = {}
    if mode is Mode.ACCOUNTS:
        accounts = load_accounts(settings.web_accounts, settings.web_accounts_file)
        if not accounts:
            raise ConfigurationError(
                f"the web app listens on {settings.host}, so sign-in is on, but there are no accounts: "
                "set WEB_ACCOUNTS or WEB_ACCOUNTS_FILE to lines made by `bloodcell user add`, "
                "or WEB_AUTH=iap behind Identity-Aware Proxy"
            )
    if mode is Mode.IAP and not settings.iap_audience:
        raise ConfigurationError("IAP_AUDIENCE is required with WEB_AUTH=iap (see terraform/iap.tf)")
    return mode, accounts


def user_from_session(session: Mapping[str, Any]) -> User | None:
    data = session.get(SESSION_KEY)
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        return None
    return User(data["name"], frozenset(r for r in data.get("roles", ()) if r in ROLES))


def session_value(user: User) -> dict[str, Any]:
    return {"name": user.name, "roles": sorted(user.roles)}


def _request() -> Any:
    from nicegui import context
    from nicegui.storage import request_contextvar

    request = request_contextvar.get()
    if request is None:  # an event handler: the page's own request
        request = context.client.request
    return request


def current_user() -> User:
    """The signed-in user of the current request (the local user on a loopback stack).

    Raises ``NotSignedIn`` outside a signed-in request; ``web.signin`` never lets
    such a request reach a page, so pages need not handle it.
    """
    if STATE.mode is Mode.LOCAL:
        return LOCAL_USER
    user = user_from_session(_request().session)
    if user is None:
        raise NotSignedIn("no signed-in user for this request")
    return user
