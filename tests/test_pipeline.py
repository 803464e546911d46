"""The pipeline steps in-process: rejections, contract checks, overwrites, and the S3 archive."""

from __future__ import annotations

import json
from typing import Any

import boto3
import numpy as np
import pytest

from bloodcell import tensorio
from bloodcell.contract import CONTRACT
from bloodcell.errors import TransientError
from bloodcell.events import ObjectRef
from bloodcell.pipeline import Pipeline
from bloodcell.settings import Settings
from bloodcell.storage import LocalStorage
from bloodcell.storage.s3 import S3Storage
from tests.support.common import image_bytes


def _ref(info: Any) -> ObjectRef:
    return ObjectRef(info.bucket, info.name, info.generation)


def _run(pipe: Pipeline, local: LocalStorage, name: str, data: bytes) -> dict[str, Any]:
    pipe.preprocess(_ref(local.write("uploads", name, data)))
    tensor = local.stat("tensors", name + ".npy")
    if tensor is not None:
        pipe.predict(_ref(tensor))
    return dict(json.loads(local.read("results", name + ".json")[0]))


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "empty"),
        (b"GIF89a but not really", "not an image"),
        (image_bytes((16, 16)), "too small"),
        (image_bytes((2000, 100)), "aspect ratio"),
        (image_bytes((320, 240), "JPEG")[:300], "truncated"),
    ],
)
def test_every_rejection_is_a_result_with_a_reason(
    settings: Settings, local: LocalStorage, data: bytes, words: str
) -> None:
    result = _run(Pipeline(settings, local), local, "upload.jpg", data)

    assert result["status"] == "rejected"
    assert words in result["reason"]
    assert result["rejected_by"] == "preprocess"
    assert result["label"] is None


def _tensor(local: LocalStorage, array: np.ndarray, contract: str = CONTRACT.version) -> ObjectRef:
    """A tensor that proves its source: the upload t.jpg exists at the generation it names."""
    upload = local.write("uploads", "t.jpg", image_bytes())
    meta = {
        "source-bucket": "uploads",
        "source-name": "t.jpg",
        "source-generation": upload.generation,
        "contract-version": contract,
    }
    return _ref(local.write("tensors", "t.jpg.npy", tensorio.dump(array), metadata=meta))


@pytest.mark.parametrize(
    ("array", "contract", "words"),
    [
        (np.zeros((64, 64, 3), np.float32), CONTRACT.version, "does not match the model input"),
        (np.zeros(CONTRACT.shape, np.float64), CONTRACT.version, "does not match the model input"),
        (np.full(CONTRACT.shape, np.nan, np.float32), CONTRACT.version, "NaN"),
        (np.zeros(CONTRACT.shape, np.float32), "0", "contract version 0"),
    ],
)
def test_tensor_mismatch_is_rejected_by_predict(
    settings: Settings, local: LocalStorage, array: np.ndarray, contract: str, words: str
) -> None:
    outcome = Pipeline(settings, local).predict(_tensor(local, array, contract))

    result = json.loads(local.read("results", "t.jpg.json")[0])
    assert outcome.status == "rejected"
    assert result["rejected_by"] == "predict"
    assert words in result["reason"]


def test_tensor_object_that_is_not_npy_is_rejected(settings: Settings, local: LocalStorage) -> None:
    upload = local.write("uploads", "t.jpg", image_bytes())
    meta = {
        "source-bucket": "uploads",
        "source-name": "t.jpg",
        "source-generation": upload.generation,
        "contract-version": CONTRACT.version,
    }
    info = local.write("tensors", "t.jpg.npy", b"\x93NUMPY garbage", metadata=meta)

    assert Pipeline(settings, local).predict(_ref(info)).status == "rejected"


def test_new_generation_is_classified_again_and_replaces_the_result(
    settings: Settings, local: LocalStorage, cell_jpeg: bytes
) -> None:
    pipe = Pipeline(settings, local)
    first = _run(pipe, local, "cell.jpg", b"not an image")

    second = _run(pipe, local, "cell.jpg", cell_jpeg)

    assert first["status"] == "rejected"
    assert second["status"] == "classified"
    assert second["source"]["generation"] != first["source"]["generation"]


def test_stale_event_for_a_replaced_object_does_nothing(
    settings: Settings, local: LocalStorage, cell_jpeg: bytes
) -> None:
    pipe = Pipeline(settings, local)
    old = local.write("uploads", "cell.jpg", cell_jpeg)
    local.write("uploads", "cell.jpg", cell_jpeg + b"\0")

    assert pipe.preprocess(_ref(old)).status == "stale"
    assert local.stat("tensors", "cell.jpg.npy") is None


@pytest.fixture
def s3_archive(settings: Settings, s3_bucket: tuple[str, str]) -> tuple[Settings, S3Storage, str]:
    endpoint, bucket = s3_bucket
    archived = Settings(
        **{
            **settings.__dict__,
            "archive_storage": "s3",
            "archive_bucket": bucket,
            "archive_prefix": "wbc/",
            "archive_s3_endpoint_url": endpoint,
        }
    )
    return archived, S3Storage(endpoint_url=endpoint, region="us-east-1"), bucket


def test_archive_goes_to_s3_by_date_and_label(
    s3_archive: tuple[Settings, S3Storage, str], local: LocalStorage, cell_jpeg: bytes
) -> None:
    settings, archive, bucket = s3_archive

    result = _run(Pipeline(settings, local, archive), local, "dir/cell (1).jpg", cell_jpeg)

    keys = sorted(
        o["Key"]
        for o in boto3.client(
            "s3", endpoint_url=archive.endpoint_url, region_name="us-east-1"
        ).list_objects_v2(Bucket=bucket)["Contents"]
    )
    day = result["source"]["uploaded"][:10]
    base = f"wbc/{day}/{result['label']}/{result['source']['generation']}/dir/cell (1).jpg"
    assert keys == [base, base + ".json"]
    assert archive.read(bucket, base)[0] == cell_jpeg
    assert json.loads(archive.read(bucket, base + ".json")[0])["label"] == result["label"]


class _FlakyArchive:
    """Wraps a storage whose writes fail while ``down`` is set, like an unreachable endpoint."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.down = inner, True

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def write(self, *args: Any, **kwargs: Any) -> Any:
        if self.down:
            raise TransientError("archive endpoint unreachable")
        return self.inner.write(*args, **kwargs)


def test_archive_outage_publishes_a_pending_result_then_completes_on_retry(
    s3_archive: tuple[Settings, S3Storage, str], local: LocalStorage, cell_jpeg: bytes
) -> None:
    settings, archive, _ = s3_archive
    flaky = _FlakyArchive(archive)
    pipe = Pipeline(settings, local, flaky)
    pipe.preprocess(_ref(local.write("uploads", "a.jpg", cell_jpeg)))
    tensor = _ref(local.stat("tensors", "a.jpg.npy"))

    with pytest.raises(TransientError):
        pipe.predict(tensor)
    pending = json.loads(local.read("results", "a.jpg.json")[0])
    flaky.down = False
    pipe.predict(tensor)
    done = json.loads(local.read("results", "a.jpg.json")[0])

    assert pending["archive"]["status"] == "pending" and pending["label"] is not None
    assert done["archive"]["status"] == "stored"
    assert done["probabilities"] == pending["probabilities"]
    assert pipe.predict(tensor).status == "duplicate"
