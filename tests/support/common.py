"""Small helpers every kind of test needs: paths, ports, images, CloudEvents."""

from __future__ import annotations

import io
import socket
from pathlib import Path
from typing import Any

from cloudevents.http import CloudEvent
from PIL import Image

from bloodcell.events import GCS_FINALIZED
from bloodcell.storage import ObjectInfo

REPO = Path(__file__).resolve().parents[2]
SHIPPED_MODEL = REPO / "functions" / "predict" / "model"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def image_bytes(
    size: tuple[int, int] = (320, 240), fmt: str = "PNG", mode: str = "RGB", **save: Any
) -> bytes:
    color: Any = (200, 120, 180) if mode in ("RGB", "RGBA") else 128
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, fmt, **save)
    return buffer.getvalue()


def gcs_cloudevent(info: ObjectInfo | dict[str, Any], **overrides: Any) -> CloudEvent:
    """A CloudEvent shaped like Eventarc's, built with the cloudevents SDK."""
    if isinstance(info, ObjectInfo):
        data: dict[str, Any] = {
            "bucket": info.bucket,
            "name": info.name,
            "generation": info.generation,
            "size": str(info.size),
        }
    else:
        data = dict(info)
    attributes = {
        "type": GCS_FINALIZED,
        "source": f"//storage.googleapis.com/projects/_/buckets/{data['bucket']}",
        "subject": f"objects/{data['name']}",
    }
    attributes.update(overrides)
    return CloudEvent(attributes, data)
