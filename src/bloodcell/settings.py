"""Configuration, read once from UPPER_SNAKE environment variables.

The same names work locally, on Knative and on Cloud Run. A bad value stops the
process at start-up with a message naming the variable, rather than failing on
the first event.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from bloodcell.errors import ConfigurationError

BACKENDS = ("local", "gcs", "s3")

# Every variable the code reads, with its meaning: the README table and the
# deployment checks are tested against this list.
ENV_VARS: dict[str, str] = {
    "BLOODCELL_STORAGE": "storage backend for the upload, tensor and result buckets: local, gcs or s3",
    "BLOODCELL_DATA_DIR": "root folder of the local backend's folder buckets",
    "UPLOAD_BUCKET": "bucket people upload images into (triggers preprocess)",
    "TENSOR_BUCKET": "bucket preprocess writes tensors into (triggers predict)",
    "RESULT_BUCKET": "bucket predict and preprocess write result JSON into",
    "S3_ENDPOINT_URL": "S3-compatible endpoint (MinIO) for BLOODCELL_STORAGE=s3; empty for AWS",
    "ARCHIVE_STORAGE": "where archive copies go: local or s3",
    "ARCHIVE_BUCKET": "bucket (or local folder) for archive copies kept for retraining",
    "ARCHIVE_PREFIX": "key prefix of archive copies inside ARCHIVE_BUCKET",
    "ARCHIVE_S3_ENDPOINT_URL": "S3-compatible endpoint for the archive; empty for AWS",
    "ARCHIVE_AWS_ACCESS_KEY_ID": "archive's own S3 key id, when it differs from the pipeline's (MinIO + AWS)",
    "ARCHIVE_AWS_SECRET_ACCESS_KEY": "archive's own S3 secret key, paired with ARCHIVE_AWS_ACCESS_KEY_ID",
    "ARCHIVE_AWS_ROLE_ARN": "AWS role the archive writer assumes with its Google ID token (no static key)",
    "ARCHIVE_AWS_ID_TOKEN_AUDIENCE": "audience of that Google ID token, as the role's trust policy expects",
    "MODEL_DIR": "folder holding model.tflite, labels.txt, contract.json and metadata.json",
    "MODEL_THREADS": "LiteRT interpreter threads",
    "MAX_UPLOAD_BYTES": "largest accepted upload, in bytes",
    "MAX_IMAGE_PIXELS": "largest accepted image, in pixels (decompression-bomb guard)",
    "LOG_LEVEL": "logging level",
    "EVENT_SINKS": "event source routes, bucket=url pairs separated by commas",
    "K_SINK": "single URL every event goes to (set by Knative SinkBinding/ContainerSource)",
    "EVENT_SOURCE_BUCKETS": "buckets the event source watches (default: upload and tensor buckets)",
    "EVENT_SOURCE_POLL_SECONDS": "how often the event source lists its buckets",
    "EVENT_SOURCE_CONCURRENCY": "most event deliveries in flight at once",
    "EVENT_WEBHOOK_TOKEN": "bearer token the event source requires on bucket notifications (receive mode)",
    "HOST": "interface the web app listens on",
    "PORT": "port the web app (and each function server) listens on",
    "STORAGE_SECRET": "secret that signs the web app's browser storage",
    "RESULT_TIMEOUT_SECONDS": "how long the web app waits for a result before saying so",
}


def _get(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, "").strip()
    return value or default


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 1) -> int:
    raw = _get(env, name, str(default))
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigurationError(f"{name} must be a whole number, got {raw!r}") from exc
    if value < minimum:
        raise ConfigurationError(f"{name} must be at least {minimum}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = _get(env, name, str(default))
    try:
        value = float(raw)
    except ValueError as exc:
        raise ConfigurationError(f"{name} must be a number, got {raw!r}") from exc
    if value <= 0:
        raise ConfigurationError(f"{name} must be positive, got {value}")
    return value


def _sinks(env: Mapping[str, str], buckets: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """EVENT_SINKS as (bucket, url) pairs; K_SINK alone sends every bucket to one URL."""
    raw = _get(env, "EVENT_SINKS", "")
    if not raw:
        k_sink = _get(env, "K_SINK", "")
        return tuple((bucket, k_sink) for bucket in buckets) if k_sink else ()
    pairs = []
    for item in raw.split(","):
        bucket, sep, url = item.partition("=")
        if not sep or not bucket.strip() or not url.strip().startswith(("http://", "https://")):
            raise ConfigurationError(f"EVENT_SINKS items must look like bucket=http://host, got {item!r}")
        pairs.append((bucket.strip(), url.strip()))
    return tuple(pairs)


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = _get(env, name, default).lower()
    if value not in choices:
        raise ConfigurationError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


@dataclass(frozen=True)
class Settings:
    storage: str = "local"
    data_dir: Path = Path("bloodcell-data")
    upload_bucket: str = "uploads"
    tensor_bucket: str = "tensors"
    result_bucket: str = "results"
    s3_endpoint_url: str | None = None
    archive_storage: str = "local"
    archive_bucket: str = "archive"
    archive_prefix: str = ""
    archive_s3_endpoint_url: str | None = None
    archive_aws_access_key_id: str | None = field(default=None, repr=False)
    archive_aws_secret_access_key: str | None = field(default=None, repr=False)
    archive_aws_role_arn: str | None = None
    archive_aws_id_token_audience: str = "sts.amazonaws.com"
    model_dir: Path | None = None
    model_threads: int = 1
    max_upload_bytes: int = 20 * 1024 * 1024
    max_image_pixels: int = 50_000_000
    log_level: str = "INFO"
    event_sinks: tuple[tuple[str, str], ...] = ()
    event_source_buckets: tuple[str, ...] = ()
    event_source_poll_seconds: float = 0.2
    event_source_concurrency: int = 4
    port: int = 8080
    storage_secret: str = ""
    result_timeout_seconds: float = 120.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        buckets = {
            name: _get(env, name, default)
            for name, default in (
                ("UPLOAD_BUCKET", "uploads"),
                ("TENSOR_BUCKET", "tensors"),
                ("RESULT_BUCKET", "results"),
            )
        }
        if len(set(buckets.values())) != len(buckets):
            raise ConfigurationError(
                "UPLOAD_BUCKET, TENSOR_BUCKET and RESULT_BUCKET must differ, or outputs "
                f"would re-trigger the functions: {buckets}"
            )
        if bool(_get(env, "ARCHIVE_AWS_ACCESS_KEY_ID", "")) != bool(
            _get(env, "ARCHIVE_AWS_SECRET_ACCESS_KEY", "")
        ):
            raise ConfigurationError(
                "set both ARCHIVE_AWS_ACCESS_KEY_ID and ARCHIVE_AWS_SECRET_ACCESS_KEY, or neither"
            )
        prefix = _get(env, "ARCHIVE_PREFIX", "")
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        model_dir = _get(env, "MODEL_DIR", "")
        return cls(
            storage=_choice(env, "BLOODCELL_STORAGE", "local", BACKENDS),
            data_dir=Path(_get(env, "BLOODCELL_DATA_DIR", "bloodcell-data")).resolve(),
            upload_bucket=buckets["UPLOAD_BUCKET"],
            tensor_bucket=buckets["TENSOR_BUCKET"],
            result_bucket=buckets["RESULT_BUCKET"],
            s3_endpoint_url=_get(env, "S3_ENDPOINT_URL", "") or None,
            archive_storage=_choice(env, "ARCHIVE_STORAGE", "local", ("local", "s3")),
            archive_bucket=_get(env, "ARCHIVE_BUCKET", "archive"),
            archive_prefix=prefix,
            archive_s3_endpoint_url=_get(env, "ARCHIVE_S3_ENDPOINT_URL", "") or None,
            archive_aws_access_key_id=_get(env, "ARCHIVE_AWS_ACCESS_KEY_ID", "") or None,
            archive_aws_secret_access_key=_get(env, "ARCHIVE_AWS_SECRET_ACCESS_KEY", "") or None,
            archive_aws_role_arn=_get(env, "ARCHIVE_AWS_ROLE_ARN", "") or None,
            archive_aws_id_token_audience=_get(env, "ARCHIVE_AWS_ID_TOKEN_AUDIENCE", "sts.amazonaws.com"),
            model_dir=Path(model_dir).resolve() if model_dir else None,
            model_threads=_int(env, "MODEL_THREADS", 1),
            max_upload_bytes=_int(env, "MAX_UPLOAD_BYTES", 20 * 1024 * 1024),
            max_image_pixels=_int(env, "MAX_IMAGE_PIXELS", 50_000_000),
            log_level=_get(env, "LOG_LEVEL", "INFO").upper(),
            event_sinks=_sinks(env, (buckets["UPLOAD_BUCKET"], buckets["TENSOR_BUCKET"])),
            event_source_buckets=tuple(
                b.strip()
                for b in _get(
                    env, "EVENT_SOURCE_BUCKETS", f"{buckets['UPLOAD_BUCKET']},{buckets['TENSOR_BUCKET']}"
                ).split(",")
                if b.strip()
            ),
            event_source_poll_seconds=_float(env, "EVENT_SOURCE_POLL_SECONDS", 0.2),
            event_source_concurrency=_int(env, "EVENT_SOURCE_CONCURRENCY", 4),
            port=_int(env, "PORT", 8080),
            storage_secret=_get(env, "STORAGE_SECRET", ""),
            result_timeout_seconds=_float(env, "RESULT_TIMEOUT_SECONDS", 120.0),
        )


@cache
def get_settings() -> Settings:
    """Read once per process; tests call ``get_settings.cache_clear()`` after changing env."""
    return Settings.from_env()
