"""Re-authentication at sign-off: the signer types their password again, as an electronic signature.

The password is checked by the sign-in's own account check (``auth.Accounts.check``,
with its limit on failed attempts); this module only asks it and says, in the
words the trail records, how the signer was re-authenticated. A loopback stack
has no accounts, so its local user has no password to type: re-authentication
is skipped there and the trail says so. Behind Identity-Aware Proxy the proxy's
fresh session is the signature.
"""

from __future__ import annotations

import logging

from bloodcell.review.records import IAP_SESSION, NO_PASSWORD, PASSWORD
from bloodcell.web import auth

log = logging.getLogger(__name__)


class SignatureRefused(Exception):
    """The password was wrong, or too many were: ``reason`` is shown as it is."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def needs_password() -> bool:
    return auth.STATE.mode is auth.Mode.ACCOUNTS


def _accounts() -> auth.Accounts | None:
    """The running account check: the sign-in's own, with its limiter and its bound on hashes."""
    return auth.STATE.accounts


def reauthenticate(user: auth.User, password: str, client: str) -> str:
    """How ``user`` signed (for the trail), or SignatureRefused; blocking (it hashes): run it off the loop."""
    if auth.STATE.mode is auth.Mode.LOCAL:
        return NO_PASSWORD
    if auth.STATE.mode is auth.Mode.IAP:
        return IAP_SESSION
    accounts = _accounts()
    if accounts is None:
        raise SignatureRefused("Sign-in is not set up, so no password can be checked.")
    try:
        checked = accounts.check(user.name, password, client)
    except PermissionError as exc:  # too many failed attempts (or the hashes are busy)
        raise SignatureRefused(str(exc)) from exc
    if checked is None or checked.name != user.name:
        log.warning("web: sign-off by %r refused: wrong password", user.name)
        raise SignatureRefused("Wrong password: the slide is not signed off.")
    return PASSWORD
