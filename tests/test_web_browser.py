"""The web app in a real browser against the real local stack (`bloodcell serve`).

Headless Chromium from Debian's packages drives the page: it uploads a real cell
image and a text file renamed .jpg, waits for the predicted type and for the
rejection reason, and saves a screenshot as a test artifact. The stack's own log
must hold no ERROR line, and the browser console no error.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from bloodcell import settings as settings_module
from tests.support.common import REPO, free_port

ARTIFACTS = REPO / "test-artifacts"
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
WORDS = ("Eosinophil", "Lymphocyte", "Monocyte", "Neutrophil")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
        reason="needs Debian's chromium and chromium-driver packages",
    ),
]


def _model_dir() -> Path:
    shipped = REPO / "functions" / "predict" / "model"
    if (shipped / "model.tflite").is_file():
        return shipped
    for candidate in (os.environ.get("BLOODCELL_TEST_MODEL_DIR"), "/tmp/provmodel"):
        if candidate and (Path(candidate) / "model.tflite").is_file():
            return Path(candidate)
    pytest.skip("no model: functions/predict/model/model.tflite is missing")


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """`bloodcell serve` in its own process group; yields the web URL and the log file."""
    port = free_port()
    env = {
        k: v for k, v in os.environ.items()
        if k not in settings_module.ENV_VARS and not k.startswith(("PYTEST_", "NICEGUI_"))
    }
    env.update(
        MODEL_DIR=str(_model_dir()),
        STORAGE_SECRET="browser-test-secret",
        LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO / "src"), env.get("PYTHONPATH")])),
    )
    log_path = tmp_path / "serve.log"
    argv = [sys.executable, "-m", "bloodcell.cli", "serve", "--data-dir", str(tmp_path / "data"),
            "--port", str(port)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while "bloodcell ready" not in log_path.read_text(errors="replace"):
            assert process.poll() is None, f"bloodcell serve exited:\n{log_path.read_text()}"
            assert time.monotonic() < deadline, f"bloodcell serve did not start:\n{log_path.read_text()}"
            time.sleep(0.2)
        assert requests.get(url, timeout=10).status_code == 200
        yield url, log_path
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=tmp_path)
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", "--window-size=1400,1200",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _open_and_upload(browser: object, url: str, files: list[Path]) -> object:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(url)  # type: ignore[attr-defined]
    wait = WebDriverWait(browser, 90, poll_frequency=0.2)
    picker = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".bc-upload input[type=file]")))
    picker.send_keys("\n".join(str(path) for path in files))
    return wait


def _full_page_screenshot(browser: object, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    height = browser.execute_script("return document.body.scrollHeight")  # type: ignore[attr-defined]
    browser.set_window_size(1400, max(900, min(int(height) + 120, 4000)))  # type: ignore[attr-defined]
    time.sleep(0.5)  # let the charts redraw at the new size
    assert browser.save_screenshot(str(path))  # type: ignore[attr-defined]


def test_upload_a_cell_image_and_see_its_type(
    stack: tuple[str, Path], browser: object, datasets: Path, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    assert isinstance(browser, WebDriver)
    url, log_path = stack
    cell = datasets / "bccd" / "JPEGImages" / "BloodImage_00001.jpg"
    fake = tmp_path / "notes.jpg"
    fake.write_text("Not a picture at all.\n")

    wait = _open_and_upload(browser, url, [cell, fake])
    assert isinstance(wait, WebDriverWait)

    label = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, ".bc-label")))
    assert label.text in WORDS
    reason = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, ".bc-reason")))
    assert reason.text.startswith("Rejected by preprocess:")
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".q-page"), "2 of 2 chosen finished"))
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".q-page canvas")))
    _full_page_screenshot(browser, ARTIFACTS / "webapp.png")

    console = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert console == [], console
    log = log_path.read_text(errors="replace")
    assert " ERROR " not in log and "Traceback" not in log, log


def test_a_dozen_cells_and_one_unreadable_file_all_finish(
    stack: tuple[str, Path], browser: object, datasets: Path, tmp_path: Path
) -> None:
    """A slide-sized batch in the browser; with BLOODCELL_DOCS_SCREENSHOT=1 it also renews docs/webapp.png."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    simple = datasets / "kaggle-blood-cells" / "TEST_SIMPLE"
    picks = {"NEUTROPHIL": 6, "LYMPHOCYTE": 3, "MONOCYTE": 1, "EOSINOPHIL": 1}
    files = [path for label, n in picks.items() for path in sorted((simple / label).glob("*.jpeg"))[:n]]
    fake = tmp_path / "notes.jpg"
    fake.write_text("Not a picture at all.\n")
    url, _ = stack
    wait = _open_and_upload(browser, url, [*files, fake])
    total = len(files) + 1
    wait.until(  # type: ignore[attr-defined]
        ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".q-page"), f"{total} of {total} chosen finished")
    )
    _full_page_screenshot(browser, ARTIFACTS / "webapp-batch.png")
    if os.environ.get("BLOODCELL_DOCS_SCREENSHOT"):
        _full_page_screenshot(browser, REPO / "docs" / "webapp.png")
