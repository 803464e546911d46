"""Event parsing: what Eventarc and S3/MinIO really send."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cloudevents.http import CloudEvent

from bloodcell.errors import RejectedInput, TransientError, retryable
from bloodcell.events import (
    MalformedEvent,
    ObjectRef,
    binary_http,
    decode_header_value,
    encode_header_value,
    gcs_event,
    object_refs,
    received_attributes,
)
from bloodcell.storage import ObjectInfo


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


# ---- the HTTP binding's header encoding (CloudEvents HTTP protocol binding 1.0.2, 3.1.3.2) ----


def test_header_values_are_percent_encoded_as_the_binding_example_says() -> None:
    assert encode_header_value("Euro € 😀") == "Euro%20%E2%82%AC%20%F0%9F%98%80"
    assert encode_header_value('50% "off"') == "50%25%20%22off%22"
    assert encode_header_value("line\nbreak\x7f") == "line%0Abreak%7F"


@pytest.mark.parametrize(
    "value",
    ["objects/細胞.jpg", "objects/клетка.jpg", "objects/🔬.jpg", "objects/cafe\u0301.jpg", 'a "b" 100%+c'],
)
def test_header_values_round_trip(value: str) -> None:
    assert decode_header_value(encode_header_value(value)) == value


def test_decoding_accepts_lower_case_and_quoted_strings_and_refuses_bad_utf8() -> None:
    assert decode_header_value("caf%c3%a9") == "café"
    assert decode_header_value('"a \\"quoted\\" value"') == 'a "quoted" value'
    with pytest.raises(MalformedEvent):
        decode_header_value("%C0%A0")  # overlong encoding of a space


def test_binary_mode_headers_are_ascii_and_decode_back_to_the_event() -> None:
    name = "細胞 \u2028\n.jpg"
    event = gcs_event(ObjectInfo("uploads", name, "g1", 3, datetime.now(UTC)))

    headers, _ = binary_http(event)

    assert all(v.isascii() and v.isprintable() for v in headers.values())
    decoded = received_attributes(
        CloudEvent(dict(event.get_attributes()) | {"subject": headers["ce-subject"]}, {}), headers
    )
    assert decoded["subject"] == f"objects/{name}"


@pytest.mark.parametrize(
    "records",
    [
        ["not an object"],
        [{"s3": "not an object"}],
        [{"s3": {"bucket": "uploads", "object": {"key": "a.jpg"}}}],
        [{"s3": {"bucket": {"name": "uploads"}, "object": ["a.jpg"]}}],
        [{"s3": {"bucket": {"name": "uploads"}, "object": {"key": "a.jpg", "size": "big"}}}],
        [{"s3": {"bucket": {"name": "uploads"}, "object": {"key": "a.jpg", "size": [1]}}}],
        [{"s3": {"bucket": {"name": "uploads"}, "object": {"key": 7}}}],
    ],
)
def test_odd_s3_records_are_malformed_not_crashes(records: list[object]) -> None:
    with pytest.raises(MalformedEvent):
        object_refs({"Records": records})


def test_errors_decide_ack_or_retry_in_one_place() -> None:
    assert not retryable(RejectedInput("bad image"))
    assert not retryable(MalformedEvent("no object"))
    assert retryable(TransientError("storage down"))
    assert retryable(RuntimeError("a bug we did not foresee"))


@pytest.mark.parametrize(
    "size",
    [float("inf"), float("nan"), -1, 0.5, True, [1], {"n": 1}, "1e400", "12abc", "-3", "9" * 30, 2**64],
)
def test_sizes_no_store_sends_are_malformed(size: object) -> None:
    gcs = {"bucket": "uploads", "name": "a.jpg", "size": size}
    s3 = {"Records": [{"s3": {"bucket": {"name": "uploads"}, "object": {"key": "a.jpg", "size": size}}}]}

    for data in (gcs, s3):
        with pytest.raises(MalformedEvent):
            object_refs(data)


def test_input_faults_python_raises_are_permanent_wherever_they_are_wrapped() -> None:
    import json

    from bloodcell.errors import StorageFull, disk_full

    def raised(exc: BaseException, wrapper: type[Exception]) -> Exception:
        try:
            raise exc
        except BaseException:
            try:
                raise wrapper("while parsing")  # what a library does with the parse error
            except Exception as outer:
                return outer

    deep = RecursionError("maximum recursion depth exceeded")
    assert not retryable(OverflowError("cannot convert float infinity to integer"))
    assert not retryable(deep) and not retryable(raised(deep, RuntimeError))
    assert not retryable(UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"))
    assert not retryable(json.JSONDecodeError("Expecting value", "x", 0))
    assert not retryable(OSError(36, "File name too long"))
    assert retryable(StorageFull("the disk is full")) and disk_full(StorageFull("full"))
    assert disk_full(raised(OSError(28, "No space left on device"), TransientError))
    assert retryable(raised(deep, TransientError))  # an outage met while parsing is still an outage
