"""Both functions over HTTP (functions-framework's test client) with real CloudEvents."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cloudevents.conversion import to_binary, to_structured
from functions_framework import create_app

from bloodcell import handlers
from bloodcell.settings import Settings
from bloodcell.storage import LocalStorage
from tests.support.common import REPO, gcs_cloudevent

MODES = {"binary": to_binary, "structured": to_structured}


@pytest.fixture
def clients(env: dict[str, str]) -> Any:
    handlers.pipeline.cache_clear()
    preprocess = create_app(
        "preprocess", str(REPO / "functions/preprocess/main.py"), "cloudevent"
    ).test_client()
    predict = create_app("predict", str(REPO / "functions/predict/main.py"), "cloudevent").test_client()
    yield preprocess, predict
    handlers.pipeline.cache_clear()


def _post(client: Any, event: Any, mode: str = "binary") -> int:
    headers, body = MODES[mode](event)
    return int(client.post("/", headers=headers, data=body).status_code)


def _files(root: Path, bucket: str) -> list[str]:
    return sorted(str(p.relative_to(root / bucket)) for p in (root / bucket).rglob("*") if p.is_file())


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_upload_to_result_over_http(
    clients: Any, local: LocalStorage, settings: Settings, cell_jpeg: bytes, mode: str
) -> None:
    preprocess, predict = clients
    upload = local.write("uploads", "my cell (1).jpg", cell_jpeg, content_type="image/jpeg")

    assert _post(preprocess, gcs_cloudevent(upload), mode) == 200
    tensor = local.stat("tensors", "my cell (1).jpg.npy")
    assert tensor is not None
    assert _post(predict, gcs_cloudevent(tensor), mode) == 200

    result = json.loads(local.read("results", "my cell (1).jpg.json")[0])
    assert result["status"] == "classified"
    assert result["source"]["generation"] == upload.generation
    assert set(result["probabilities"]) == {"EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL"}
    assert result["archive"]["status"] == "stored"
    assert len(_files(settings.data_dir, "archive")) == 2


def test_duplicate_events_give_one_result_and_one_archive_copy(
    clients: Any, local: LocalStorage, settings: Settings, cell_jpeg: bytes
) -> None:
    preprocess, predict = clients
    upload = local.write("uploads", "dup.jpg", cell_jpeg)
    for _ in range(3):
        assert _post(preprocess, gcs_cloudevent(upload)) == 200
    tensor = local.stat("tensors", "dup.jpg.npy")
    assert tensor is not None
    first = local.stat("results", "dup.jpg.json")

    for _ in range(3):
        assert _post(predict, gcs_cloudevent(tensor)) == 200

    assert first is None
    assert _files(settings.data_dir, "results") == ["dup.jpg.json"]
    assert len(_files(settings.data_dir, "archive")) == 2
    written_once = local.stat("results", "dup.jpg.json")
    assert _post(predict, gcs_cloudevent(tensor)) == 200
    assert local.stat("results", "dup.jpg.json") == written_once  # not rewritten


def test_s3_notification_event_is_handled(clients: Any, local: LocalStorage, cell_jpeg: bytes) -> None:
    preprocess, _ = clients
    local.write("uploads", "my cell(1).jpg", cell_jpeg)
    records = {
        "Records": [
            {
                "eventName": "s3:ObjectCreated:Put",
                "s3": {
                    "bucket": {"name": "uploads"},
                    "object": {"key": "my+cell%281%29.jpg", "size": len(cell_jpeg)},
                },
            }
        ]
    }
    event = gcs_cloudevent({"bucket": "uploads", "name": "x"}, type="com.amazonaws.s3.ObjectCreated:Put")
    event.data = records

    assert _post(preprocess, event) == 200
    assert local.stat("tensors", "my cell(1).jpg.npy") is not None


def test_malformed_upload_gets_a_rejected_result_and_a_2xx(clients: Any, local: LocalStorage) -> None:
    preprocess, _ = clients
    upload = local.write("uploads", "notes.jpg", b"this is a text file")

    assert _post(preprocess, gcs_cloudevent(upload)) == 200

    result = json.loads(local.read("results", "notes.jpg.json")[0])
    assert result["status"] == "rejected"
    assert "not an image" in result["reason"]
    assert local.stat("tensors", "notes.jpg.npy") is None


def test_event_naming_no_object_is_acknowledged_not_retried(clients: Any) -> None:
    preprocess, _ = clients
    event = gcs_cloudevent({"bucket": "uploads", "name": "a.jpg"})
    event.data = {"unexpected": True}

    assert _post(preprocess, event) == 200


def test_event_for_another_bucket_is_ignored(clients: Any, local: LocalStorage, cell_jpeg: bytes) -> None:
    preprocess, _ = clients
    info = local.write("results", "loop.jpg", cell_jpeg)

    assert _post(preprocess, gcs_cloudevent(info)) == 200
    assert local.stat("tensors", "loop.jpg.npy") is None


def test_storage_fault_answers_500_so_the_event_is_retried(
    clients: Any, local: LocalStorage, cell_jpeg: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bloodcell.errors import TransientError

    preprocess, _ = clients
    upload = local.write("uploads", "flaky.jpg", cell_jpeg)
    pipe = handlers.pipeline()

    def broken(*_: Any, **__: Any) -> Any:
        raise TransientError("storage unreachable")

    monkeypatch.setattr(pipe.storage, "write", broken)

    assert _post(preprocess, gcs_cloudevent(upload)) == 500
    monkeypatch.undo()
