"""Sign-in in headless Chromium, against `bloodcell serve --host 0.0.0.0` (the whole real stack)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from bloodcell.web import auth
from tests.support import browser as chromium
from tests.support.stack import wait_for

PASSWORD = "a long lab password"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(chromium.missing() is not None, reason=str(chromium.missing())),
]


@pytest.fixture
def open_stack(tmp_path: Path) -> Any:
    """`bloodcell serve` listening on every interface, so sign-in is on."""
    models = chromium.model_dir()
    if models is None:
        pytest.skip("no model: functions/predict/model/model.tflite is missing")
    secret = "browser-sign-in-secret-" + "x" * 16  # checkov:skip=CKV_SECRET_6:throwaway test secret
    accounts = auth.hash_line("chloé", PASSWORD, ("reviewer",))
    data = tmp_path / "data"
    with chromium.served(
        data,
        tmp_path / "serve.log",
        models,
        "--host",
        "0.0.0.0",
        STORAGE_SECRET=secret,
        WEB_ACCOUNTS=accounts,
    ) as url:
        yield url.rstrip("/"), data


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
    # the refusal is a new page: wait for it, or the next sign-in types into the old form
    refused = WebDriverWait(browser, 60).until(ec.visibility_of_element_located((By.ID, "error"))).text
    _sign_in(browser, "chloé", PASSWORD)
    WebDriverWait(browser, 60).until(ec.url_to_be(base + "/history"))
    who = WebDriverWait(browser, 60).until(ec.visibility_of_element_located((By.ID, "signed-in-user"))).text
    wait = chromium.open_and_upload(browser, base + "/", [cell])
    assert isinstance(wait, WebDriverWait)
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".q-page"), "1 of 1 chosen finished"))
    results = wait_for("a result", lambda: list((data / "results").rglob("*.json")), timeout=30)

    assert all(url.startswith(base + "/signin?next=") for url in landed.values()), landed
    assert refused == "wrong name or password"
    assert who == "chloé"
    assert json.loads(results[0].read_text())["source"]["uploader"] == "chloé"
