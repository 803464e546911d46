"""The process's log handler writes to the live standard error, whatever replaced it since."""

from __future__ import annotations

import io
import logging

import pytest

from bloodcell.logs import StderrHandler


def test_a_record_after_stderr_was_swapped_and_closed_reaches_the_new_stderr(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Arrange: the handler is made while one stream is stderr; that stream is then closed.
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr("sys.stderr", first)
    logger = logging.getLogger("tests.logs.swapped")
    logger.propagate = False
    handler = StderrHandler()
    logger.addHandler(handler)
    logger.warning("before")
    first_text = first.getvalue()
    first.close()
    monkeypatch.setattr("sys.stderr", second)

    # Act
    try:
        logger.warning("after")
    finally:
        logger.removeHandler(handler)

    # Assert
    assert first_text == "before\n"
    assert second.getvalue() == "after\n"
