"""One logging set-up for every process: the functions, the event source, the web app, the CLI.

``LOG_FORMAT=json`` writes one JSON object per line with the fields Cloud Logging
reads (``severity``, ``message``, ``time``, ``logging.googleapis.com/sourceLocation``)
plus whatever structured fields a record carries in ``extra={"fields": {...}}``;
``text`` is for people at a terminal. Object names inside messages are always
written through ``bloodcell.names.escape()`` so that a newline in a name cannot forge a
log record in either format.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from bloodcell.settings import Settings

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
_installed: list[logging.Handler] = []  # this process's one handler, once configured


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": record.levelname,
            "message": record.getMessage(),
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "logger": record.name,
            "logging.googleapis.com/sourceLocation": {
                "file": record.pathname,
                "line": record.lineno,
                "function": record.funcName,
            },
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["message"] += "\n" + self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler on whatever ``sys.stderr`` is when a record is written.

    The handler is installed once per process, and a plain StreamHandler keeps the stream it
    was made with: when that stream is swapped and closed (pytest's capture of the test that
    happened to configure logging first), every later record, from any thread, becomes a
    "Logging error" traceback instead of a log line.
    """

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass  # always the live sys.stderr


def configure_logging(settings: Settings) -> None:
    """Idempotent: the first call in a process sets the handler, later ones only the level."""
    root = logging.getLogger()
    if not _installed:
        handler = StderrHandler()
        handler.setFormatter(
            JsonFormatter() if settings.log_format == "json" else logging.Formatter(TEXT_FORMAT)
        )
        for old in list(root.handlers):
            if not type(old).__module__.startswith("_pytest"):  # keep pytest's capture
                root.removeHandler(old)
        root.addHandler(handler)
        _installed.append(handler)
    root.setLevel(settings.log_level)
