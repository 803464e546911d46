"""One storage layer, three backends, chosen by ``BLOODCELL_STORAGE``."""

from __future__ import annotations

from functools import cache

from bloodcell.settings import Settings
from bloodcell.storage.base import NotAFile, ObjectInfo, ObjectTooLarge, Storage, UnreadableObject
from bloodcell.storage.local import LocalStorage, check_object_name
from bloodcell.storage.web_identity import WebIdentity

__all__ = [
    "LocalStorage",
    "NotAFile",
    "ObjectInfo",
    "ObjectTooLarge",
    "Storage",
    "UnreadableObject",
    "check_object_name",
    "open_archive",
    "open_storage",
]


def _open(
    kind: str,
    settings: Settings,
    endpoint: str | None,
    credentials: tuple[str, str] | None = None,
    web_identity: WebIdentity | None = None,
) -> Storage:
    if kind == "local":
        return LocalStorage(settings.data_dir)
    if kind == "gcs":
        from bloodcell.storage.gcs import GcsStorage

        return GcsStorage()
    from bloodcell.storage.s3 import S3Storage

    return S3Storage(endpoint_url=endpoint, credentials=credentials, web_identity=web_identity)


@cache
def open_storage(settings: Settings) -> Storage:
    """The pipeline's buckets; one client per process, reused across events."""
    return _open(settings.storage, settings, settings.s3_endpoint_url)


@cache
def open_archive(settings: Settings) -> Storage:
    """Where archive copies go: a folder bucket locally, S3 (AWS or an in-cluster store) when deployed.

    On AWS, a role assumed with the service's Google ID token (no key at all);
    a static key pair only for S3-compatible stores that have no STS.
    """
    keys = None
    if settings.archive_aws_access_key_id and settings.archive_aws_secret_access_key:
        keys = (settings.archive_aws_access_key_id, settings.archive_aws_secret_access_key)
    identity = None
    if settings.archive_aws_role_arn:
        identity = WebIdentity(settings.archive_aws_role_arn, settings.archive_aws_id_token_audience)
    return _open(settings.archive_storage, settings, settings.archive_s3_endpoint_url, keys, identity)
