"""Built-in accounts: the ``name:roles:argon2-hash`` lines, read live and edited safely.

The web app asks ``AccountBook.current()`` on every request and every websocket
message, and the book re-reads ``WEB_ACCOUNTS_FILE`` whenever the file changes,
so ``bloodcell user add/remove/set-role`` take effect without a restart. A
session remembers its account's fingerprint (name, roles, password hash): any
change to the account ends the session at once.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bloodcell.errors import ConfigurationError

log = logging.getLogger(__name__)

USER = "user"
REVIEWER = "reviewer"
ROLES = (USER, REVIEWER)


@dataclass(frozen=True)
class Account:
    name: str
    roles: frozenset[str]
    password_hash: str

    @property
    def fingerprint(self) -> str:
        """Changes with the roles or the password: a session made before no longer matches."""
        text = "\0".join((self.name, ",".join(sorted(self.roles)), self.password_hash))
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def line(self) -> str:
        return f"{self.name}:{','.join(sorted(self.roles))}:{self.password_hash}"


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


def check_name(name: str) -> None:
    if not name or any(c in name for c in ":\n\r") or not name.isprintable() or len(name) > 128:
        raise ValueError("a user name must be 1 to 128 printable characters, without ':'")


def check_roles(roles: tuple[str, ...]) -> frozenset[str]:
    if unknown := set(roles) - set(ROLES):
        raise ValueError(f"unknown role {sorted(unknown)}; roles: {', '.join(ROLES)}")
    return frozenset({USER, *roles})


def hash_line(name: str, password: str, roles: tuple[str, ...] = ()) -> str:
    """The account line ``bloodcell user add`` prints: the password itself is never stored."""
    from argon2 import PasswordHasher

    check_name(name)
    return Account(name, check_roles(roles), PasswordHasher().hash(password)).line()


class AccountBook:
    """The accounts as they are now: the inline ones, then the file's, re-read when it changes.

    A file that cannot be read or parsed contributes no account (its sessions
    end): an edit that went wrong never leaves a removed account working.
    """

    def __init__(self, inline: str, file: Path | None) -> None:
        self._inline = parse_accounts(inline, "WEB_ACCOUNTS")
        self._file = file
        self._seen: tuple[int, int, int] | None = None
        self._loaded = False
        self._accounts: dict[str, Account] = dict(self._inline)
        self._lock = threading.Lock()
        self.current()

    def _stamp(self) -> tuple[int, int, int] | None:
        assert self._file is not None
        try:
            st = self._file.stat()
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def current(self) -> Mapping[str, Account]:
        if self._file is None:
            return self._accounts
        stamp = self._stamp()
        with self._lock:
            if self._loaded and stamp == self._seen:
                return self._accounts
            accounts = dict(self._inline)
            try:
                accounts |= parse_accounts(self._file.read_text(), "WEB_ACCOUNTS_FILE")
            except (OSError, UnicodeDecodeError) as exc:
                log.error("web: WEB_ACCOUNTS_FILE %s unreadable (%s): its accounts are off", self._file, exc)
            except ConfigurationError as exc:
                log.error("web: %s: the file's accounts are off until it is fixed", exc)
            if self._loaded:
                log.info("web: accounts re-read from %s: %d account(s)", self._file, len(accounts))
            self._accounts, self._seen, self._loaded = accounts, stamp, True
            return self._accounts


# ---- editing the accounts file (``bloodcell user ...``) ----


def _rewrite(file: Path, lines: list[str]) -> None:
    """Whole or not at all: written beside, flushed, then renamed over the file (mode 0600)."""
    fd, temp = tempfile.mkstemp(dir=file.parent, prefix=f".{file.name}.")
    try:
        with os.fdopen(fd, "w") as out:
            out.write("".join(f"{line}\n" for line in lines))
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp, 0o600)
        os.replace(temp, file)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _edit(file: Path, name: str, change: str | None, must_exist: bool) -> None:
    text = file.read_text() if file.exists() else ""
    parse_accounts(text, str(file))  # refuse to edit a file that is already wrong
    kept: list[str] = []
    found = False
    for raw in text.splitlines():
        if raw.strip() and not raw.lstrip().startswith("#") and raw.partition(":")[0].strip() == name:
            found = True
            if change is not None:
                kept.append(change)
            continue
        kept.append(raw)
    if must_exist and not found:
        raise KeyError(name)
    if change is not None and not found:
        kept.append(change)
    _rewrite(file, kept)


def put_account(file: Path, line: str) -> None:
    """Add the account, or replace its line (a new password or new roles)."""
    (account,) = parse_accounts(line, "the new line").values()
    _edit(file, account.name, account.line(), must_exist=False)


def remove_account(file: Path, name: str) -> None:
    _edit(file, name, None, must_exist=True)


def set_roles(file: Path, name: str, roles: tuple[str, ...]) -> None:
    accounts = parse_accounts(file.read_text() if file.exists() else "", str(file))
    if name not in accounts:
        raise KeyError(name)
    account = accounts[name]
    _edit(file, name, Account(name, check_roles(roles), account.password_hash).line(), must_exist=True)
