"""The two kinds of failure the pipeline distinguishes.

A permanent error means the input itself is unusable: retrying cannot help, so the
function writes a ``rejected`` result and returns normally. A transient error means
the world was briefly unavailable (storage, network): the function raises so the
platform redelivers the event.
"""


class BloodcellError(Exception):
    """Base of every error raised on purpose by this package."""


class RejectedInput(BloodcellError):
    """The upload (or the tensor made from it) can never be classified.

    ``reason`` is shown to people as it is, so it must read as a sentence.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TransientError(BloodcellError):
    """A fault that may go away on retry: the event must be redelivered."""


class ConfigurationError(BloodcellError):
    """The environment is misconfigured: fail fast at start-up with this message."""


class ObjectNotFound(BloodcellError):
    """The named object does not exist (or no longer exists at that generation)."""


class PreconditionFailed(BloodcellError):
    """A conditional write lost a race: the object already exists."""


class MalformedDocument(BloodcellError, ValueError):
    """A stored document (result, record) is not of the shape its schema version promises.

    Readers skip or report it; it is never retried, since the bytes will not change.
    """
