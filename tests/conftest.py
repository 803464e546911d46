"""Shared fixtures: real data, the shipped model, folder/S3/GCS storage over HTTP, CloudEvents."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from bloodcell import settings as settings_module
from bloodcell import storage as storage_module
from bloodcell.calibration import cells as lab_cells
from bloodcell.calibration.core import PANEL_FILE, LabCells
from bloodcell.imaging import ImageLimits
from bloodcell.model import load_classifier
from bloodcell.ood import FILE as OOD_FILE
from bloodcell.settings import Settings
from bloodcell.storage import LocalStorage
from tests.support import browser as browser_support
from tests.support.common import REPO, SHIPPED_MODEL, free_port
from tests.support.gcs_proxy import PreconditionProxy
from tests.support.lab import lab_images, write_lab
from tests.support.stack import Stack, clean_env

LAB_PER_CLASS = 8  # cells per class of the synthetic "new lab"

# ---- pipeline fixtures ----


# ---- the kernel's inotify watch limit: test_watch lowers it for real as root ----

WATCH_LIMIT = Path("/proc/sys/fs/inotify/max_user_watches")
WATCH_LIMIT_FLOOR = 8192  # below this every watcher of the suite runs out of watches


def _watch_limit() -> int | None:
    try:
        return int(WATCH_LIMIT.read_text())
    except (OSError, ValueError):
        return None


@pytest.fixture(scope="session")
def session_watch_limit() -> int | None:
    start = _watch_limit()
    return None if start is None else max(start, WATCH_LIMIT_FLOOR)


@pytest.fixture(autouse=True)
def _watch_limit_kept(session_watch_limit: int | None) -> Iterator[None]:
    """Every test starts and ends with the kernel's watch limit as the session found it.

    test_watch lowers the real, system-wide limit as root to prove a silent loss is gone; a
    limit left low (by a run stopped mid-test, or read back already lowered) must never reach
    another test's watchers, which would log "limit reached" and sweep instead of watch.
    """

    def restore() -> None:
        now = _watch_limit()
        low = session_watch_limit is not None and now is not None and now < session_watch_limit
        if low and os.access(WATCH_LIMIT, os.W_OK):
            WATCH_LIMIT.write_text(str(session_watch_limit))

    restore()
    yield
    restore()


@pytest.fixture(scope="session")
def datasets() -> Path:
    """Real labelled images (../shared/datasets); CI always provides them."""
    path = Path(os.environ.get("BLOODCELL_DATASETS", REPO.parent / "shared" / "datasets"))
    if not (path / "bccd").is_dir():
        pytest.skip(f"datasets not found at {path}: set BLOODCELL_DATASETS")
    return path


@pytest.fixture(scope="session")
def model_dir() -> Path:
    override = os.environ.get("BLOODCELL_TEST_MODEL_DIR")
    return Path(override) if override else SHIPPED_MODEL


@pytest.fixture(scope="session")
def cell_jpeg(datasets: Path) -> bytes:
    return (datasets / "bccd" / "JPEGImages" / "BloodImage_00001.jpg").read_bytes()


@pytest.fixture
def env(tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """A clean local configuration rooted in tmp_path, visible to get_settings()."""
    values = {
        "BLOODCELL_STORAGE": "local",
        "BLOODCELL_DATA_DIR": str(tmp_path / "data"),
        "ARCHIVE_STORAGE": "local",
        "MODEL_DIR": str(model_dir),
        "HOST": "127.0.0.1",  # a loopback app: no sign-in (tests of sign-in set their own)
    }
    for key in settings_module.ENV_VARS:
        monkeypatch.delenv(key, raising=False)
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    settings_module.get_settings.cache_clear()
    storage_module.open_storage.cache_clear()
    storage_module.open_archive.cache_clear()
    yield values
    settings_module.get_settings.cache_clear()
    storage_module.open_storage.cache_clear()
    storage_module.open_archive.cache_clear()


@pytest.fixture
def settings(env: dict[str, str]) -> Settings:
    return settings_module.get_settings()


@pytest.fixture
def local(settings: Settings) -> LocalStorage:
    return LocalStorage(settings.data_dir)


@pytest.fixture
def make_stack(tmp_path: Path, model_dir: Path) -> Iterator[Any]:
    """Start `bloodcell serve` on tmp_path/data; every stack is stopped (or killed) at the end."""
    stacks: list[Stack] = []

    def start(data_dir: Path | None = None, **env: str) -> Stack:
        stack = Stack(data_dir or tmp_path / "data", clean_env(model_dir, **env), tmp_path / "serve.log")
        stacks.append(stack)
        return stack.start()

    yield start
    for stack in stacks:
        stack.stop()


# ---- calibration: a "new lab" of real cells under a stain shift (tests/support/lab.py) ----


@pytest.fixture(scope="session")
def calibratable(model_dir: Path) -> Path:
    missing = [f for f in ("head.npz", OOD_FILE, PANEL_FILE) if not (model_dir / f).is_file()]
    if missing:
        pytest.fail(f"the model at {model_dir} cannot be calibrated: no {', '.join(missing)}")
    return model_dir


@pytest.fixture(scope="session")
def lab(datasets: Path, calibratable: Path) -> list[tuple[str, str, bytes]]:
    return lab_images(datasets, LAB_PER_CLASS)


@pytest.fixture(scope="session")
def lab_folder(tmp_path_factory: pytest.TempPathFactory, lab: list[tuple[str, str, bytes]]) -> Path:
    return write_lab(tmp_path_factory.mktemp("lab") / "vérifiées 血液", lab)


@pytest.fixture(scope="session")
def embedded(lab_folder: Path, calibratable: Path) -> LabCells:
    items = lab_cells.labelled_folder(lab_folder)
    return lab_cells.embed(load_classifier(calibratable, 1), items, ImageLimits())


# ---- S3 and GCS over real HTTP ----


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """moto's S3 as a real HTTP server in this process (state survives stop/start)."""
    from moto.server import ThreadedMotoServer

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(moto_server: str) -> Iterator[tuple[str, str]]:
    import uuid

    import boto3

    name = f"b-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1").create_bucket(Bucket=name)
    yield moto_server, name


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[str]:
    """gcp-storage-emulator over HTTP; google-cloud-storage finds it via STORAGE_EMULATOR_HOST."""
    from gcp_storage_emulator.server import create_server

    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()
    host = f"http://127.0.0.1:{port}"
    previous = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = host
    yield host
    if previous is None:
        os.environ.pop("STORAGE_EMULATOR_HOST", None)
    else:
        os.environ["STORAGE_EMULATOR_HOST"] = previous
    server.stop()


@pytest.fixture
def gcs_precondition_proxy(gcs_emulator: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[PreconditionProxy]:
    """The emulator behind a recording proxy that answers 412 as GCS would (tests/support/gcs_proxy.py).

    Only clients created inside the test see it: GcsStorage reads STORAGE_EMULATOR_HOST lazily.
    """
    proxy = PreconditionProxy(gcs_emulator).start()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.url)
    yield proxy
    proxy.stop()


# ---- web app: NiceGUI's `user` fixture (tests/test_web_user.py) ----

pytest_plugins = ["nicegui.testing.user_plugin"]


# ---- real headless Chromium against `bloodcell serve` (tests/support/browser.py) ----


@pytest.fixture
def browser_stack(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """`bloodcell serve` on folder buckets under tmp_path/data; yields its URL and its log file."""
    models = browser_support.model_dir()
    if models is None:
        pytest.skip("no model: functions/predict/model/model.tflite is missing")
    log_path = tmp_path / "serve.log"
    with browser_support.served(
        tmp_path / "data", log_path, models, STORAGE_SECRET="browser-test-secret"
    ) as url:
        assert requests.get(url, timeout=10).status_code == 200
        yield url, log_path


@pytest.fixture
def browsers(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """Opens separate headless Chromiums (``open(width=..., probe=True)``); all closed at the end."""
    opened: list[Any] = []

    def open_one(**options: Any) -> Any:
        opened.append(browser_support.chromium(tmp_path, **options))
        return opened[-1]

    yield open_one
    for driver in opened:
        browser_support.close(driver)


@pytest.fixture
def browser(browsers: Callable[..., Any]) -> Any:
    """One headless Chromium, 1400 x 1200."""
    return browsers()
