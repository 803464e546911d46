"""Event parsing: what Eventarc and S3/MinIO really send."""

from __future__ import annotations

import pytest

from bloodcell.events import MalformedEvent, ObjectRef, object_refs


@pytest.mark.parametrize(("generation", "size"), [("1732530000123456", "20162"), (1732530000123456, 20162)])
def test_gcs_payload_with_strings_or_numbers(generation: object, size: object) -> None:
    data = {
        "kind": "storage#object",
        "bucket": "uploads",
        "name": "cell (1).jpg",
        "generation": generation,
        "metageneration": "1",
        "size": size,
        "contentType": "image/jpeg",
        "timeCreated": "2026-11-25T10:00:00Z",
    }

    assert object_refs(data) == [ObjectRef("uploads", "cell (1).jpg", "1732530000123456", 20162)]


def test_s3_notification_keys_are_url_decoded() -> None:
    data = {
        "Records": [
            {
                "eventName": "s3:ObjectCreated:Put",
                "s3": {
                    "bucket": {"name": "uploads"},
                    "object": {"key": "my+cell%281%29.jpg", "size": 5, "eTag": '"abc"'},
                },
            },
            {
                "eventName": "s3:ObjectRemoved:Delete",
                "s3": {"bucket": {"name": "uploads"}, "object": {"key": "x"}},
            },
        ]
    }

    assert object_refs(data) == [ObjectRef("uploads", "my cell(1).jpg", "abc", 5)]


def test_json_bytes_are_accepted() -> None:
    assert object_refs(b'{"bucket": "uploads", "name": "a.jpg"}') == [ObjectRef("uploads", "a.jpg")]


@pytest.mark.parametrize(
    "data", [{}, {"bucket": "uploads"}, "not json", [1, 2], {"bucket": "u", "name": "a", "size": "big"}]
)
def test_events_naming_no_object_are_malformed(data: object) -> None:
    with pytest.raises(MalformedEvent):
        object_refs(data)
