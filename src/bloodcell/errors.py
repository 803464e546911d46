"""The two kinds of failure the pipeline distinguishes.

A permanent error means the input itself is unusable: retrying cannot help, so the
function writes a ``rejected`` result and returns normally. A transient error means
the world was briefly unavailable (storage, network): the function raises so the
platform redelivers the event.

Both kinds are decided here, once (:func:`retryable`), for every entry point: the
function servers, the event source and the webhook.
"""

from __future__ import annotations

import errno
import json


class BloodcellError(Exception):
    """Base of every error raised on purpose by this package."""


class PermanentError(BloodcellError):
    """Retrying can never help: the event is acknowledged once, with one log line."""


class RejectedInput(PermanentError):
    """The upload (or the tensor made from it) can never be classified.

    ``reason`` is shown to people as it is, so it must read as a sentence.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class MalformedEvent(PermanentError, ValueError):
    """An event that names no object (or not in a shape we know): nothing can be done with it."""


class TransientError(BloodcellError):
    """A fault that may go away on retry: the event must be redelivered."""


class StorageFull(TransientError):
    """The disk (or quota) under a folder bucket is full: every event waits until space returns.

    Transient like any outage, but never a reason to give up on an event: the event
    source keeps such events without counting attempts, and the function servers
    answer 507 (Insufficient Storage) so a sender can tell it apart.
    """


class ConfigurationError(BloodcellError):
    """The environment is misconfigured: fail fast at start-up with this message."""


class NoModelRuntime(ConfigurationError):
    """This process cannot run the model (LiteRT is not installed: the web app's image)."""


class ObjectNotFound(BloodcellError):
    """The named object does not exist (or no longer exists at that generation)."""


class PreconditionFailed(BloodcellError):
    """A conditional write lost a race: the object already exists."""


# What Python raises on input that no retry can change, wherever it is parsed: a number
# beyond its type (``"size": 1e400`` as an int, 5,000 digits), nesting deeper than the
# parser's stack (JSON 50,000 levels deep), text that is not Unicode (lone surrogates,
# invalid UTF-8), a body that is not JSON at all.
INPUT_FAULTS: tuple[type[BaseException], ...] = (
    OverflowError,
    RecursionError,
    UnicodeError,
    json.JSONDecodeError,
)
# A name no file system can hold (a component over NAME_MAX, a path over PATH_MAX).
_NAME_ERRNOS = {errno.ENAMETOOLONG}
_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and what it was raised from or while handling (libraries wrap parse errors)."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 16:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def permanent(exc: BaseException) -> bool:
    """True when the input itself is unusable: acknowledged once, never retried."""
    for link in _chain(exc):
        if isinstance(link, TransientError):
            return False  # an outage met while handling a bad input is still an outage
        if isinstance(link, (PermanentError, *INPUT_FAULTS)):
            return True
        if isinstance(link, OSError) and link.errno in _NAME_ERRNOS:
            return True
    return False


def disk_full(exc: BaseException) -> bool:
    """A full disk or quota (ENOSPC, EDQUOT) anywhere in the chain: wait for space, never give up."""
    return any(
        isinstance(link, StorageFull) or (isinstance(link, OSError) and link.errno in _FULL_ERRNOS)
        for link in _chain(exc)
    )


def retryable(exc: BaseException) -> bool:
    """The one ack-or-retry rule: permanent faults are acknowledged, everything else is retried.

    Unknown exceptions count as transient on purpose: a bug or an outage we did not foresee
    must not lose the event; the bounded retries of the platform (or of the local event
    source) then dead-letter it, so nothing loops forever either. A full disk is retried
    too, but without bound (:func:`disk_full`).
    """
    return not permanent(exc)


class MalformedDocument(PermanentError, ValueError):
    """A stored document (result, record) is not of the shape its schema version promises.

    Readers skip or report it; it is never retried, since the bytes will not change.
    """
