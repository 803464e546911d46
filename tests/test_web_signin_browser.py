"""Sign-in in headless Chromium, against `bloodcell serve --host 0.0.0.0` (the whole real stack)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from bloodcell.web import auth
from tests.support.common import free_port
from tests.support.stack import clean_env, wait_for
from tests.test_web_browser import CHROMEDRIVER, CHROMIUM, _model_dir, _open_and_upload, browser

__all__ = ["browser"]  # the fixture, shared with the other browser tests

PASSWORD = "a long lab password"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
        reason="needs Debian's chromium and chromium-driver packages",
    ),
]


@pytest.fixture
def open_stack(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """`bloodcell serve` listening on every interface, so sign-in is on."""
    port = free_port()
    secret = "browser-sign-in-secret-" + "x" * 16  # checkov:skip=CKV_SECRET_6:throwaway test secret
    env = clean_env(
        _model_dir(),
        STORAGE_SECRET=secret,
        WEB_ACCOUNTS=auth.hash_line("chloé", PASSWORD, ("reviewer",)),
    )
    env = {k: v for k, v in env.items() if not k.startswith(("PYTEST_", "NICEGUI_"))}
    data = tmp_path / "data"
    argv = [sys.executable, "-m", "bloodcell.cli", "serve", "--data-dir", str(data)]
    argv += ["--host", "0.0.0.0", "--port", str(port)]
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 120
        while "bloodcell ready" not in log_path.read_text(errors="replace"):
            assert process.poll() is None, f"bloodcell serve exited:\n{log_path.read_text()}"
            assert time.monotonic() < deadline, f"bloodcell serve did not start:\n{log_path.read_text()}"
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}", data
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _sign_in(driver: object, name: str, password: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.ID, "name").send_keys(name)  # type: ignore[attr-defined]
    driver.find_element(By.ID, "password").send_keys(password)  # type: ignore[attr-defined]
    driver.find_element(By.ID, "signin").click()  # type: ignore[attr-defined]


def test_only_a_signed_in_user_gets_in_and_their_upload_records_them(
    open_stack: tuple[str, Path], browser: object, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    assert isinstance(browser, WebDriver)
    base, data = open_stack
    cell = tmp_path / "cellule été.png"
    Image.new("RGB", (360, 360), (200, 120, 180)).save(cell)

    landed = {}
    for path in ("/", "/history", "/model", "/thumb/anything.png"):
        browser.get(base + path)
        landed[path] = browser.current_url
    browser.get(base + "/history")
    _sign_in(browser, "chloé", "not the password")
    refused = browser.find_element(By.ID, "error").text
    _sign_in(browser, "chloé", PASSWORD)
    WebDriverWait(browser, 60).until(ec.url_to_be(base + "/history"))
    who = WebDriverWait(browser, 60).until(ec.visibility_of_element_located((By.ID, "signed-in-user"))).text
    wait = _open_and_upload(browser, base + "/", [cell])
    assert isinstance(wait, WebDriverWait)
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".q-page"), "1 of 1 chosen finished"))
    results = wait_for("a result", lambda: list((data / "results").rglob("*.json")), timeout=30)

    assert all(url.startswith(base + "/signin?next=") for url in landed.values()), landed
    assert refused == "wrong name or password"
    assert who == "chloé"
    assert json.loads(results[0].read_text())["source"]["uploader"] == "chloé"
