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

import hashlib
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from bloodcell.errors import ConfigurationError
from bloodcell.web.accounts import (
    REVIEWER,
    ROLES,
    USER,
    Account,
    AccountBook,
    hash_line,
    load_accounts,
    parse_accounts,
)
from bloodcell.web.limiter import Busy, Charge, FailureLimiter, TooManyAttempts
from bloodcell.web.sessions import SessionStore

if TYPE_CHECKING:
    from bloodcell.settings import Settings

__all__ = [
    "REVIEWER",
    "ROLES",
    "USER",
    "Account",
    "AccountBook",
    "Busy",
    "TooManyAttempts",
    "hash_line",
    "load_accounts",
    "parse_accounts",
]
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


class Accounts:
    """Password checks, each attempt counted before its hash runs (see ``web.limiter``).

    Attempts from a browser with a device cookie for the account count against
    that device alone; all others against the account and the client address.
    So a flood against a name, or from an address, locks out new browsers for
    the window but never the account's own known devices.
    """

    def __init__(
        self,
        book: AccountBook,
        max_failures: int = 5,
        window: float = 300.0,
        per_address: int = 20,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        from argon2 import PasswordHasher

        self.book = book
        self._hasher = PasswordHasher()
        # checked for unknown names too, so timing does not tell which names exist
        self._dummy = self._hasher.hash("not a password of anyone")
        self._max, self._per_address = max_failures, per_address
        self.limiter = FailureLimiter(window, max_keys, clock)
        self.hashes = 0  # password hashes evaluated so far
        self._count = threading.Lock()

    def begin(self, name: str, client: str, device: str | None = None) -> Charge:
        """Count the attempt, or raise TooManyAttempts: before any hash, so a flood evaluates none."""
        tag = hashlib.sha256(name.lower().encode()).hexdigest()[:16]
        if device is not None:
            return self.limiter.charge({f"device:{device}:{tag}": self._max})
        return self.limiter.charge({f"name:{tag}": self._max, f"client:{client[:64]}": self._per_address})

    def finish(self, charge: Charge, name: str, password: str) -> Account | None:
        """The account for a right password (its charge refunded); None for a wrong one."""
        from argon2.exceptions import Argon2Error, InvalidHashError

        account = self.book.current().get(name)
        with self._count:
            self.hashes += 1
        try:
            ok: bool = self._hasher.verify(account.password_hash if account else self._dummy, password)
        except (Argon2Error, InvalidHashError):
            ok = False
        if not (ok and account is not None):
            return None
        self.limiter.refund(charge)
        for key in charge.keys:
            if key.startswith("device:"):
                self.limiter.clear(key)
        return account

    def cancel(self, charge: Charge) -> None:
        self.limiter.refund(charge)

    def check(self, name: str, password: str, client: str, device: str | None = None) -> User | None:
        """``begin`` then ``finish``: the user for a right password, None for a wrong one."""
        account = self.finish(self.begin(name, client, device), name, password)
        return None if account is None else User(account.name, account.roles)


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
    accounts: Accounts | None = None
    sessions: SessionStore | None = None


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


def session_id(session: Mapping[str, Any]) -> str | None:
    """The server-side session id a (built-in accounts) cookie carries."""
    data = session.get(SESSION_KEY)
    sid = data.get("sid") if isinstance(data, dict) else None
    return sid if isinstance(sid, str) else None


def session_user(session: Mapping[str, Any], touch: bool = False) -> User | None:
    """Who a cookie's session belongs to now; None once it ended (or under any other mode)."""
    if STATE.mode is Mode.IAP:
        return user_from_session(session)
    if STATE.mode is not Mode.ACCOUNTS or STATE.sessions is None or STATE.accounts is None:
        return None
    account = STATE.sessions.resolve(session_id(session), STATE.accounts.book.current(), touch)
    return None if account is None else User(account.name, account.roles)


def user_from_session(session: Mapping[str, Any]) -> User | None:
    """IAP mode: the user the middleware verified for this request."""
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

    Raises ``NotSignedIn`` outside a signed-in request, or once the session has
    ended (an open page's handlers then fail rather than act); ``web.signin``
    never lets such a request or websocket message reach a page.
    """
    if STATE.mode is Mode.LOCAL:
        return LOCAL_USER
    user = session_user(_request().session)
    if user is None:
        raise NotSignedIn("no signed-in user for this request")
    return user
