"""The two kinds of failure the pipeline distinguishes.

A permanent error means the input itself is unusable: retrying cannot help, so the
function writes a ``rejected`` result and returns normally. A transient error means
the world was briefly unavailable (storage, network): the function raises so the
platform redelivers the event.
"""


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


class ConfigurationError(BloodcellError):
    """The environment is misconfigured: fail fast at start-up with this message."""


class ObjectNotFound(BloodcellError):
    """The named object does not exist (or no longer exists at that generation)."""


class PreconditionFailed(BloodcellError):
    """A conditional write lost a race: the object already exists."""


def retryable(exc: BaseException) -> bool:
    """The one ack-or-retry rule: permanent faults are acknowledged, everything else is retried.

    Unknown exceptions count as transient on purpose: a bug or an outage we did not foresee
    must not lose the event; the bounded retries of the platform (or of the local event
    source) then dead-letter it, so nothing loops forever either.
    """
    return not isinstance(exc, PermanentError)


class MalformedDocument(PermanentError, ValueError):
    """A stored document (result, record) is not of the shape its schema version promises.

    Readers skip or report it; it is never retried, since the bytes will not change.
    """
