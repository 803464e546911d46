"""Configuration, read once from UPPER_SNAKE environment variables.

Each setting is declared once, as a field of ``Settings`` made by ``setting()``:
its variable, default, parser and one-line meaning live together, and the
parser, the defaults, ``ENV_VARS``, the README table (``python -m
bloodcell.settings``) and the deployment checks are all derived from that one
declaration. Precedence is flags (``overrides``) over environment over
defaults. A bad value stops the process at start-up with a message naming the
variable, rather than failing on the first event.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from bloodcell.errors import ConfigurationError
from bloodcell.slides.references import Band, parse_references, read_bands
from bloodcell.slides.times import zone

BACKENDS = ("local", "gcs", "s3")
LOG_FORMATS = ("text", "json")

Parser = Callable[[str, str], Any]  # (variable name, raw text) -> value


def text(_name: str, raw: str) -> str:
    return raw


def optional(_name: str, raw: str) -> str | None:
    return raw or None


def path(_name: str, raw: str) -> Path:
    return Path(raw).resolve()


def optional_path(_name: str, raw: str) -> Path | None:
    return Path(raw).resolve() if raw else None


def upper(_name: str, raw: str) -> str:
    return raw.upper()


def prefix(_name: str, raw: str) -> str:
    return raw if not raw or raw.endswith("/") else raw + "/"


def names(_name: str, raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def whole(minimum: int = 1) -> Parser:
    def parse(name: str, raw: str) -> int:
        try:
            value = int(raw)
        except ValueError as exc:
            raise ConfigurationError(f"{name} must be a whole number, got {raw!r}") from exc
        if value < minimum:
            raise ConfigurationError(f"{name} must be at least {minimum}, got {value}")
        return value

    return parse


def positive(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError as exc:
        raise ConfigurationError(f"{name} must be a number, got {raw!r}") from exc
    if value <= 0:
        raise ConfigurationError(f"{name} must be positive, got {value}")
    return value


def choice(*choices: str) -> Parser:
    def parse(name: str, raw: str) -> str:
        value = raw.lower()
        if value not in choices:
            raise ConfigurationError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
        return value

    return parse


def sinks(name: str, raw: str) -> tuple[tuple[str, str], ...]:
    pairs = []
    for item in raw.split(","):
        bucket, sep, url = item.partition("=")
        if not sep or not bucket.strip() or not url.strip().startswith(("http://", "https://")):
            raise ConfigurationError(f"{name} items must look like bucket=http://host, got {item!r}")
        pairs.append((bucket.strip(), url.strip()))
    return tuple(pairs)


def ce_overrides(name: str, raw: str) -> tuple[tuple[str, str], ...]:
    """K_CE_OVERRIDES as the SinkBinding writes it: {"extensions": {"name": "value"}}."""
    try:
        extensions = json.loads(raw).get("extensions", {})
    except (ValueError, AttributeError) as exc:
        raise ConfigurationError(f'{name} must be JSON like {{"extensions": {{...}}}}, got {raw!r}') from exc
    if not isinstance(extensions, dict):
        raise ConfigurationError(f"{name}: extensions must be an object")
    return tuple((str(k), str(v)) for k, v in extensions.items())


def setting(env: str, default: Any, parse: Parser, meaning: str, shown: str | None = None, **kw: Any) -> Any:
    """One declared setting: a dataclass field carrying its variable, parser and meaning.

    ``shown`` is the default as the README prints it, where the real default is
    derived (``None`` meaning "computed from other settings").
    """
    meta = {"env": env, "parse": parse, "meaning": meaning, "shown": shown}
    return dataclasses.field(default=default, metadata=meta, **kw)


@dataclass(frozen=True)
class Settings:
    storage: str = setting(
        "BLOODCELL_STORAGE",
        "local",
        choice(*BACKENDS),
        "storage backend for the upload, tensor and result buckets: `local`, `gcs` or `s3`",
    )
    data_dir: Path = setting(
        "BLOODCELL_DATA_DIR",
        Path("bloodcell-data"),
        path,
        "root folder of the local backend's folder buckets",
    )
    upload_bucket: str = setting(
        "UPLOAD_BUCKET", "uploads", text, "bucket people upload images into (triggers preprocess)"
    )
    tensor_bucket: str = setting(
        "TENSOR_BUCKET", "tensors", text, "bucket preprocess writes tensors into (triggers predict)"
    )
    result_bucket: str = setting(
        "RESULT_BUCKET", "results", text, "bucket the functions write result JSON into"
    )
    s3_endpoint_url: str | None = setting(
        "S3_ENDPOINT_URL", None, optional, "S3-compatible endpoint when `BLOODCELL_STORAGE=s3`; unset for AWS"
    )
    archive_storage: str = setting(
        "ARCHIVE_STORAGE",
        "local",
        choice("local", "s3"),
        "where archive copies go: `local` (a folder bucket) or `s3`",
    )
    archive_bucket: str = setting(
        "ARCHIVE_BUCKET", "archive", text, "bucket (or folder) for archive copies kept for retraining"
    )
    archive_prefix: str = setting(
        "ARCHIVE_PREFIX", "", prefix, "key prefix of archive copies inside `ARCHIVE_BUCKET`"
    )
    archive_s3_endpoint_url: str | None = setting(
        "ARCHIVE_S3_ENDPOINT_URL", None, optional, "S3-compatible endpoint for the archive; unset for AWS"
    )
    archive_aws_access_key_id: str | None = setting(
        "ARCHIVE_AWS_ACCESS_KEY_ID",
        None,
        optional,
        "the archive's own key id, when it differs from the pipeline's; unset: boto3's usual `AWS_*` chain",
        repr=False,
    )
    archive_aws_secret_access_key: str | None = setting(
        "ARCHIVE_AWS_SECRET_ACCESS_KEY",
        None,
        optional,
        "the archive's own secret key, set together with `ARCHIVE_AWS_ACCESS_KEY_ID`",
        repr=False,
    )
    archive_aws_role_arn: str | None = setting(
        "ARCHIVE_AWS_ROLE_ARN",
        None,
        optional,
        "AWS role the archive writer assumes with its Google ID token (web identity federation, no key)",
    )
    archive_aws_id_token_audience: str = setting(
        "ARCHIVE_AWS_ID_TOKEN_AUDIENCE",
        "sts.amazonaws.com",
        text,
        "audience of that Google ID token, as the role's trust policy expects",
    )
    model_dir: Path | None = setting(
        "MODEL_DIR",
        None,
        optional_path,
        "folder holding `model.tflite`, `labels.txt`, `contract.json`, `metadata.json`",
        shown="the shipped model",
    )
    model_threads: int = setting("MODEL_THREADS", 1, whole(), "LiteRT interpreter threads")
    model_bucket: str = setting(
        "MODEL_BUCKET",
        "models",
        text,
        "bucket of the model registry: the lab's calibrations and the pointer to the active one",
    )
    qc_interval_hours: float = setting(
        "QC_INTERVAL_HOURS",
        24.0,
        positive,
        "how often `bloodcell serve` re-runs the QC panel; also the drift alarm's window of new cells",
    )
    qc_ood_jump: float = setting(
        "QC_OOD_JUMP",
        0.15,
        positive,
        "drift alarm when new cells' unfamiliar share exceeds the QC panel's by more than this",
    )
    max_upload_bytes: int = setting(
        "MAX_UPLOAD_BYTES", 20 * 1024 * 1024, whole(), "largest accepted upload, in bytes"
    )
    max_image_pixels: int = setting(
        "MAX_IMAGE_PIXELS",
        25_000_000,
        whole(),
        "largest accepted image in pixels, checked from the header before decoding: a 4000x3000 (12 MP) "
        "camera frame and 24 MP (6000x4000) sensors pass; beyond that, and whatever the limit, an image "
        "whose decoding would need over 192 MiB at its peak (estimated from the header: e.g. a 5000x5000 "
        "WebP) is refused with the reason, so preprocess stays under 300 MB for any input",
    )
    log_level: str = setting("LOG_LEVEL", "INFO", upper, "logging level")
    log_format: str = setting(
        "LOG_FORMAT",
        "text",
        choice(*LOG_FORMATS),
        "`text`, or `json`: one JSON object per line with Cloud Logging's `severity` and `message`",
    )
    function_max_request_bytes: int = setting(
        "FUNCTION_MAX_REQUEST_BYTES",
        256 * 1024,
        whole(),
        "largest request body a function server accepts; larger gets 413 before it is read "
        "(a CloudEvent is a few KB)",
    )
    function_read_timeout_seconds: float = setting(
        "FUNCTION_READ_TIMEOUT_SECONDS",
        10.0,
        positive,
        "time a client has to send a whole request to a function server; slower connections are closed",
    )
    function_idle_timeout_seconds: int = setting(
        "FUNCTION_IDLE_TIMEOUT_SECONDS",
        5,
        whole(),
        "how long a function server keeps an idle keep-alive connection open",
    )
    function_workers: int = setting(
        "FUNCTION_WORKERS", 1, whole(), "gunicorn worker processes per function container"
    )
    function_threads: int = setting(
        "FUNCTION_THREADS",
        8,
        whole(),
        "threads per function worker; images are decoded one at a time per process whatever this is",
    )
    event_sinks: tuple[tuple[str, str], ...] = setting(
        "EVENT_SINKS", (), sinks, "event source routes: `bucket=url` pairs separated by commas", shown="–"
    )
    k_sink: str | None = setting(
        "K_SINK", None, optional, "one URL for every event (set by Knative's SinkBinding/ContainerSource)"
    )
    event_source_buckets: tuple[str, ...] = setting(
        "EVENT_SOURCE_BUCKETS",
        (),
        names,
        "buckets the event source watches",
        shown="upload and tensor buckets",
    )
    event_source_poll_seconds: float = setting(
        "EVENT_SOURCE_POLL_SECONDS",
        0.2,
        positive,
        "ignored: the event source no longer lists on a timer (kept so older manifests start)",
        shown="–",
    )
    event_source_concurrency: int = setting(
        "EVENT_SOURCE_CONCURRENCY",
        8,
        whole(),
        "most event deliveries in flight at once, shared equally among the sinks (at least one each)",
    )
    event_source_mode: str | None = setting(
        "EVENT_SOURCE_MODE",
        None,
        choice("watch", "receive"),
        "`watch`: inotify on the folder buckets; `receive`: an HTTP server on `HOST`:`PORT` taking "
        "S3-format bucket notifications (`POST /`; `GET`/`HEAD` on `/` and `/healthz` for the store's "
        "and the platform's checks), see docs/delivery.md",
        shown="`watch` for local storage, else `receive`",
    )
    event_source_max_attempts: int = setting(
        "EVENT_SOURCE_MAX_ATTEMPTS",
        20,
        whole(),
        "deliveries of one event (backoff 0.2 s doubling to 10 s) before the event source dead-letters it",
    )
    dead_letter_bucket: str = setting(
        "DEAD_LETTER_BUCKET",
        "dead-letters",
        text,
        "folder bucket where the local event source writes one JSON record per dead-lettered event",
    )
    event_webhook_token: str = setting(
        "EVENT_WEBHOOK_TOKEN",
        "",
        text,
        "bearer token the receive mode requires of notifications (`Authorization: Bearer ...`)",
        shown="– (none required)",
        repr=False,
    )
    ce_overrides: tuple[tuple[str, str], ...] = setting(
        "K_CE_OVERRIDES",
        (),
        ce_overrides,
        'JSON `{"extensions": {...}}`: attributes set on every event sent (Knative SinkBinding)',
    )
    ca_certs: str = setting(
        "K_CA_CERTS", "", text, "PEM CA certificates verifying an `https` `K_SINK` (Knative SinkBinding)"
    )
    host: str = setting(
        "HOST",
        "0.0.0.0",
        text,
        "interface the web app listens on",
        shown="`0.0.0.0` (`bloodcell serve`: `127.0.0.1`)",
    )
    port: int = setting("PORT", 8080, whole(), "port the web app (and each function container) listens on")
    metrics_port: int = setting(
        "METRICS_PORT",
        0,
        whole(0),
        "port of the event source's and the web app's Prometheus `/metrics` server (the functions "
        "answer `/metrics` on `PORT`)",
        shown="0 (none)",
    )
    storage_secret: str = setting(
        "STORAGE_SECRET",
        "",
        text,
        "secret signing the web app's session cookies and browser storage; required when the web app "
        "listens beyond loopback (sign-in is on)",
        shown="random per start",
        repr=False,
    )
    web_trusted_proxies: tuple[str, ...] = setting(
        "WEB_TRUSTED_PROXIES",
        ("127.0.0.1",),
        names,
        "addresses of the reverse proxies whose `X-Forwarded-For`/`-Proto` the web app believes (the "
        "client's address for sign-in limits and logs; `https` makes its cookies `Secure`), separated "
        "by commas; `*` where only a proxy can reach it (Cloud Run)",
        shown="`127.0.0.1`",
    )
    web_auth: str = setting(
        "WEB_AUTH",
        "accounts",
        choice("accounts", "iap"),
        "how people sign in when the web app listens beyond loopback: `accounts` (built-in, from "
        "`WEB_ACCOUNTS`/`WEB_ACCOUNTS_FILE`) or `iap` (Identity-Aware Proxy's signed assertion); "
        "on 127.0.0.1 nobody signs in",
    )
    web_accounts: str = setting(
        "WEB_ACCOUNTS",
        "",
        text,
        "built-in accounts, one `name:roles:argon2-hash` line each (made by `bloodcell user add`); a secret",
        repr=False,
    )
    web_accounts_file: Path | None = setting(
        "WEB_ACCOUNTS_FILE",
        None,
        optional_path,
        "file holding more account lines (a mounted secret), re-read whenever it changes",
    )
    web_session_idle_minutes: float = setting(
        "WEB_SESSION_IDLE_MINUTES",
        30.0,
        positive,
        "a built-in-accounts session unused this long ends (sign in again)",
    )
    web_session_max_hours: float = setting(
        "WEB_SESSION_MAX_HOURS",
        12.0,
        positive,
        "a built-in-accounts session ends this long after sign-in, however active",
    )
    web_signin_hashes: int = setting(
        "WEB_SIGNIN_HASHES",
        2,
        whole(),
        "password checks (argon2id, 64 MiB each) run at once; one is kept for browsers that signed in "
        "before, and sign-ins beyond a short queue are refused at once",
    )
    iap_audience: str = setting(
        "IAP_AUDIENCE",
        "",
        text,
        "expected `aud` of IAP's JWT: `/projects/NUMBER/locations/REGION/services/NAME` for IAP on "
        "Cloud Run (terraform output `webapp_iap_audience`)",
    )
    iap_keys_url: str = setting(
        "IAP_KEYS_URL",
        "https://www.gstatic.com/iap/verify/public_key-jwk",
        text,
        "where IAP's public signing keys (JWK set) are fetched from",
    )
    iap_reviewers: tuple[str, ...] = setting(
        "IAP_REVIEWERS",
        (),
        names,
        "emails given the `reviewer` role under `WEB_AUTH=iap`, separated by commas",
        shown="–",
    )
    upload_retention_days: int = setting(
        "UPLOAD_RETENTION_DAYS",
        0,
        whole(0),
        "days an upload is kept after it was written (its tensor goes with it); 0 keeps them",
    )
    result_retention_days: int = setting(
        "RESULT_RETENTION_DAYS",
        0,
        whole(0),
        "days a result (and review record) is kept after it was written; 0 keeps them",
    )
    archive_retention_days: int = setting(
        "ARCHIVE_RETENTION_DAYS",
        0,
        whole(0),
        "days an archive copy is kept after it was written; 0 keeps them",
    )
    retention_sweep_hours: float = setting(
        "RETENTION_SWEEP_HOURS",
        1.0,
        positive,
        "how often `bloodcell serve` sweeps out what retention expired",
    )
    result_timeout_seconds: float = setting(
        "RESULT_TIMEOUT_SECONDS", 120.0, positive, "how long the web app waits for a result before saying so"
    )
    report_reference_ranges: tuple[tuple[str, float, float], ...] = setting(
        "REPORT_REFERENCE_RANGES",
        parse_references(""),
        lambda _name, raw: parse_references(raw),
        "reports' reference ranges in percent: `LABEL=low-high` items separated by commas, "
        "e.g. `NEUTROPHIL=40-70,EOSINOPHIL=1-5`",
        shown="adult ranges (N 40-60, L 20-40, M 2-8, E 1-4)",
    )
    reference_ranges_file: tuple[Band, ...] = setting(
        "REFERENCE_RANGES_FILE",
        (),
        lambda _name, raw: read_bands(Path(raw)),
        "a lab-editable CSV of reference ranges by age band and sex "
        "(`category,sex,age_from,age_to,low,high`; see docs/review.md), "
        "used for slides with the patient's age and sex, over `REPORT_REFERENCE_RANGES`",
    )
    lab_timezone: str = setting(
        "LAB_TIMEZONE",
        "UTC",
        lambda _name, raw: zone(raw).key,
        "time zone the pages and reports show times in",
    )
    count_target: int = setting(
        "COUNT_TARGET",
        100,
        lambda name, raw: int(choice("100", "200")(name, raw)),
        "white cells a slide's review aims to count (100 or 200): the counter on the slide page",
    )

    def __post_init__(self) -> None:
        buckets = {"UPLOAD_BUCKET": self.upload_bucket, "TENSOR_BUCKET": self.tensor_bucket}
        buckets["RESULT_BUCKET"] = self.result_bucket
        if len(set(buckets.values())) != len(buckets):
            raise ConfigurationError(
                "UPLOAD_BUCKET, TENSOR_BUCKET and RESULT_BUCKET must differ, or outputs "
                f"would re-trigger the functions: {buckets}"
            )
        if bool(self.archive_aws_access_key_id) != bool(self.archive_aws_secret_access_key):
            raise ConfigurationError(
                "set both ARCHIVE_AWS_ACCESS_KEY_ID and ARCHIVE_AWS_SECRET_ACCESS_KEY, or neither"
            )
        results_days, uploads_days = self.result_retention_days, self.upload_retention_days
        if results_days and not 0 < uploads_days <= results_days:
            raise ConfigurationError(
                f"RESULT_RETENTION_DAYS={results_days} needs UPLOAD_RETENTION_DAYS from 1 to {results_days}: "
                "an upload that outlives its result would be classified again"
            )
        object.__setattr__(self, "data_dir", Path(self.data_dir).resolve())
        if self.event_source_mode is None:  # derived default: folders can be watched, stores notify
            object.__setattr__(self, "event_source_mode", "watch" if self.storage == "local" else "receive")
        if not self.event_source_buckets:  # derived default: the buckets that trigger a function
            object.__setattr__(self, "event_source_buckets", (self.upload_bucket, self.tensor_bucket))

    @property
    def routes(self) -> dict[str, str]:
        """Bucket -> sink URL for the event source: EVENT_SINKS, else K_SINK for every watched bucket."""
        if self.event_sinks:
            pairs = self.event_sinks
        elif self.k_sink:
            pairs = tuple((bucket, self.k_sink) for bucket in (self.upload_bucket, self.tensor_bucket))
        else:
            pairs = ()
        return {bucket: url for bucket, url in pairs if bucket in self.event_source_buckets}

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        overrides: Mapping[str, Any] | None = None,
        defaults: Mapping[str, Any] | None = None,
    ) -> Settings:
        """Flags (``overrides``, by field name; None means "not given") beat ``env`` beats defaults.

        ``defaults`` replaces a field's default for one command (``serve`` binds loopback).
        """
        env = os.environ if env is None else env
        values: dict[str, Any] = dict(defaults or {})
        for spec in dataclasses.fields(cls):
            raw = env.get(spec.metadata["env"], "").strip()
            if raw:
                values[spec.name] = spec.metadata["parse"](spec.metadata["env"], raw)
        values.update({k: v for k, v in (overrides or {}).items() if v is not None})
        return cls(**values)


def _declared() -> tuple[dataclasses.Field[Any], ...]:
    return tuple(dataclasses.fields(Settings))


# Every variable the code reads, with its meaning: the README table and the deployment checks test against it.
ENV_VARS: dict[str, str] = {spec.metadata["env"]: spec.metadata["meaning"] for spec in _declared()}


def markdown_table() -> str:
    """The README's configuration table, made from the declarations."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for spec in _declared():
        shown = spec.metadata["shown"]
        if shown is None:
            default = spec.default
            shown = "–" if default in (None, "", ()) else f"`{default}`"
        rows.append(f"| `{spec.metadata['env']}` | {shown} | {spec.metadata['meaning']} |")
    return "\n".join(rows)


@cache
def get_settings() -> Settings:
    """Read once per process; tests call ``get_settings.cache_clear()`` after changing env."""
    return Settings.from_env()


if __name__ == "__main__":
    sys.stdout.write(markdown_table() + "\n")
