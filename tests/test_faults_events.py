"""Events no retry can fix, on every backend: answered once, 2xx or 4xx, with one log line.

A CloudEvent whose ``size`` is ``1e400`` (an OverflowError once made an int), JSON nested
50,000 deep (a RecursionError), a forged 300-byte name, and the rest of their family:
other malformed numbers, wrong types, huge strings, invalid UTF-8, lone surrogates. They
are posted to both function servers (the app ``bloodcell function`` serves, limits and
fault answers included) with the pipeline's buckets on folders, S3 (moto server) and GCS
(the emulator), since a name no store can hold fails differently on each.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from bloodcell import handlers
from bloodcell import settings as settings_module
from bloodcell import storage as storage_module
from bloodcell.funcserver import make_app
from tests.support.common import REPO
from tests.support.storage import BACKENDS, backend_env

DEEP = 50_000
STRUCTURED = {"Content-Type": "application/cloudevents+json"}


def _data(bucket: str, name: Any = "a.jpg", **fields: Any) -> str:
    return json.dumps({"bucket": bucket, "name": name, "generation": "1", **fields})


def _structured(data: str) -> tuple[dict[str, str], bytes]:
    body = (
        '{"specversion": "1.0", "id": "bad-1", "source": "//storage.googleapis.com/projects/_/buckets/x", '
        '"type": "google.cloud.storage.object.v1.finalized", "datacontenttype": "application/json", '
        f'"data": {data}}}'
    )
    return {"Content-Type": "application/cloudevents+json"}, body.encode("utf-8", "surrogatepass")


def _binary(data: bytes) -> tuple[dict[str, str], bytes]:
    headers = {
        "Content-Type": "application/json",
        "ce-specversion": "1.0",
        "ce-id": "bad-2",
        "ce-source": "//storage.googleapis.com/projects/_/buckets/x",
        "ce-type": "google.cloud.storage.object.v1.finalized",
    }
    return headers, data


def _replace(text: str, field: str, raw: str) -> str:
    """``field``'s JSON value replaced by raw JSON text (1e400, NaN: what json.dumps won't write)."""
    return text.replace(f'"{field}": "@"', f'"{field}": {raw}')


def bad_requests(bucket: str) -> dict[str, tuple[dict[str, str], bytes]]:
    """Every member of the class, as the HTTP request a hostile or broken sender would make."""
    deep = "[" * DEEP + "]" * DEEP
    size_at = _data(bucket, size="@")
    return {
        "size 1e400": _structured(_replace(size_at, "size", "1e400")),
        "size -1e400": _structured(_replace(size_at, "size", "-1e400")),
        "size NaN": _structured(_replace(size_at, "size", "NaN")),
        "size Infinity": _structured(_replace(size_at, "size", "Infinity")),
        "size 5000 digits": _structured(_replace(size_at, "size", "9" * 5000)),
        "size '1e400'": _structured(_data(bucket, size="1e400")),
        "size 2**64": _structured(_data(bucket, size=2**64)),
        "size -1": _structured(_data(bucket, size=-1)),
        "size 0.5": _structured(_data(bucket, size=0.5)),
        "size true": _structured(_data(bucket, size=True)),
        "size list": _structured(_data(bucket, size=[1])),
        "generation object": _structured(_data(bucket, generation={"a": 1})),
        "generation 1 MB": _structured(_data(bucket, generation="g" * 100_000)),
        "name number": _structured(_data(bucket, name=7)),
        "name 300 bytes": _structured(_data(bucket, name="n" * 296 + ".jpg")),
        "name 2000 bytes": _structured(_data(bucket, name="n/" * 998 + ".jpg")),
        "name 5000 bytes": _structured(_data(bucket, name="n" * 4996 + ".jpg")),
        "name lone surrogate": _structured(_data(bucket).replace('"a.jpg"', '"\\ud800.jpg"')),
        "name NUL": _structured(_data(bucket, name="a\x00.jpg")),
        "body nested 50,000 deep": (STRUCTURED, deep.encode()),
        "data nested 50,000 deep": _structured(deep),
        "binary data nested 50,000 deep": _binary(deep.encode()),
        "binary data size 1e400": _binary(_replace(size_at, "size", "1e400").encode()),
        "body invalid UTF-8": (STRUCTURED, b'{"specversion": "\xff\xfe"}'),
        "binary data invalid UTF-8": _binary(b'{"bucket": "' + bucket.encode() + b'", "name": "\xff.jpg"}'),
        "records of numbers": _structured('{"Records": [1, 2]}'),
        "record size 1e400": _structured(
            '{"Records": [{"s3": {"bucket": {"name": "' + bucket + '"}, '
            '"object": {"key": "a.jpg", "size": 1e400}}}]}'
        ),
        "data is a string": _structured('"just text"'),
        "body not JSON": (STRUCTURED, b"{not json"),
    }


@pytest.fixture(params=BACKENDS)
def servers(
    request: pytest.FixtureRequest, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, Any]]:
    """Both function apps with the pipeline's buckets on one backend."""
    for key, value in backend_env(request.param, request).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("FUNCTION_TARGET", "")  # create_app sets it; don't leak it to later tests
    settings_module.get_settings.cache_clear()
    storage_module.open_storage.cache_clear()
    handlers.pipeline.cache_clear()
    settings = settings_module.get_settings()
    apps = {
        name: make_app(name, str(REPO / "functions" / name / "main.py"), settings).test_client()
        for name in ("preprocess", "predict")
    }
    yield {"apps": apps, "settings": settings}
    handlers.pipeline.cache_clear()


@pytest.mark.parametrize("case", list(bad_requests("b")))
def test_permanent_faults_are_answered_once_with_2xx_or_4xx_and_one_log_line(
    servers: dict[str, Any], case: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = servers["settings"]
    buckets = {"preprocess": settings.upload_bucket, "predict": settings.tensor_bucket}
    for name, client in servers["apps"].items():
        headers, body = bad_requests(buckets[name])[case]
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="bloodcell.event"):
            status = client.post("/", headers=headers, data=body).status_code

        lines = [r for r in caplog.records if r.name == "bloodcell.event"]
        assert 200 <= status < 500, (name, case, status, [r.getMessage()[:200] for r in lines])
        assert len(lines) == 1, (name, case, [r.getMessage()[:200] for r in lines])
        assert "outcome=retry" not in lines[0].getMessage()


@pytest.mark.parametrize(
    "case", ["body nested 50,000 deep", "body invalid UTF-8", "size 5000 digits", "size 1e400"]
)
def test_plain_functions_framework_answers_them_the_same(
    env: dict[str, str], settings: Any, case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """main.py installs the fault answers itself: served by `functions-framework` alone, still no 500."""
    from functions_framework import create_app

    monkeypatch.setenv("FUNCTION_TARGET", "")
    handlers.pipeline.cache_clear()
    for name, bucket in (("preprocess", settings.upload_bucket), ("predict", settings.tensor_bucket)):
        client = create_app(name, str(REPO / "functions" / name / "main.py"), "cloudevent").test_client()
        headers, body = bad_requests(bucket)[case]

        assert 200 <= client.post("/", headers=headers, data=body).status_code < 500, (name, case)
    handlers.pipeline.cache_clear()
