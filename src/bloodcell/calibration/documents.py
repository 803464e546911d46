"""The JSON documents of the registry and the QC panel: one reader and one writer for them all.

Every document carries ``schema_version``; a reader meets objects written by other versions
and by hand, so anything unreadable, of another version or missing a field is one
``MalformedDocument`` naming the document, never a stray KeyError downstream.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import fields
from typing import TYPE_CHECKING, Any, TypeVar

from bloodcell.errors import MalformedDocument

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

SCHEMA_VERSION = "1"


D = TypeVar("D", bound="DataclassInstance")


def load(data: bytes, what: str) -> dict[str, Any]:
    try:
        body = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedDocument(f"{what} is not JSON: {exc}") from exc
    if not isinstance(body, dict) or str(body.get("schema_version")) != SCHEMA_VERSION:
        raise MalformedDocument(f"{what} is not a version-{SCHEMA_VERSION} document")
    return body


def dump(body: Mapping[str, Any]) -> bytes:
    return json.dumps(dict(body), indent=2, ensure_ascii=False).encode("utf-8")


def build(cls: type[D], data: bytes, what: str, tuples: tuple[str, ...] = ()) -> D:
    """``cls`` from a stored document: its fields by name, the lists named in ``tuples`` as tuples."""
    body = load(data, what)
    try:
        for name in tuples:
            body[name] = tuple(body[name])
        return cls(**{f.name: body[f.name] for f in fields(cls)})
    except (KeyError, TypeError) as exc:
        raise MalformedDocument(f"{what} lacks {exc}") from exc
