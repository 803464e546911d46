"""A slide reviewed in real headless Chromium against the real local stack, keyboard only.

Twenty cell images go onto a slide through the page's file input; every cell is
then reviewed with key presses sent to the page (no clicks), the slide is signed
off, and the page is reloaded and opened in a second, separate browser: the
reviewed differential and the audit trail read the same in all three. The page's
long tasks (Performance API) are written next to the screenshot as a figure, not
asserted.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import test_web_browser as web

ARTIFACTS, REPO = web.ARTIFACTS, web.REPO
pytestmark = web.pytestmark
stack = web.stack  # `bloodcell serve` in its own process group

# Every long task (> 50 ms) the page runs, recorded from the first script on.
LONG_TASKS = """
window.__longTasks = [];
new PerformanceObserver(list => {
  for (const entry of list.getEntries()) window.__longTasks.push(entry.duration);
}).observe({type: 'longtask', buffered: true});
"""


def _chromium(tmp_path: Path, width: int = 1400, height: int = 1200) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(web.CHROMIUM)
    profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=tmp_path)
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", f"--window-size={width},{height}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(web.CHROMEDRIVER)), options=options)
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": LONG_TASKS})
    driver.profile_dir = profile
    return driver


@pytest.fixture
def browsers(tmp_path: Path) -> Iterator[list[Any]]:
    """Up to two separate browsers (separate profiles: nothing shared but the server)."""
    opened: list[Any] = []
    yield opened
    for driver in opened:
        driver.quit()
        shutil.rmtree(driver.profile_dir, ignore_errors=True)


def _text(driver: Any, css: str) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.CSS_SELECTOR, css).text)


def _wait_text(driver: Any, css: str, text: str, timeout: float = 120) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout, poll_frequency=0.2).until(
        ec.text_to_be_present_in_element((By.CSS_SELECTOR, css), text)
    )


def _trail(driver: Any) -> list[str]:
    from selenium.webdriver.common.by import By

    return [row.text for row in driver.find_elements(By.CSS_SELECTOR, ".bc-trail tbody tr")]


def test_a_twenty_cell_slide_reviewed_by_keyboard_then_signed_off(
    stack: tuple[str, Path], browsers: list[Any], datasets: Path, tmp_path: Path
) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    url, log_path = stack
    simple = datasets / "kaggle-blood-cells" / "TEST_SIMPLE"
    picks = {"NEUTROPHIL": 8, "LYMPHOCYTE": 5, "MONOCYTE": 3, "EOSINOPHIL": 4}
    files = [p for label, n in picks.items() for p in sorted((simple / label).glob("*.jpeg"))[:n]]
    assert len(files) == 20
    first = _chromium(tmp_path)
    browsers.append(first)
    slide_url = f"{url}slides/BR-0001"
    first.get(slide_url)
    _wait_text(first, ".q-page", "Slide BR-0001")
    first.find_element(By.CSS_SELECTOR, ".bc-slide-upload input[type=file]").send_keys(
        "\n".join(str(p) for p in files)
    )
    _wait_text(first, ".q-page", "20 images")
    _wait_text(first, ".bc-review-report", "0 waiting")
    _wait_text(first, ".bc-review-report", "20 not reviewed yet")

    # keyboard only: X for the first cell, then approve; the selection moves on by itself
    keys = ActionChains(first)
    body = first.find_element(By.TAG_NAME, "body")
    keys.move_to_element_with_offset(body, 0, 0)
    for index in range(20):
        keys.send_keys("x" if index == 0 else "a")
        keys.pause(0.05)
    keys.perform()
    _wait_text(first, ".bc-review-report", "0 not reviewed yet")
    _wait_text(first, ".bc-review-report", "1 not a white cell")
    if os.environ.get("BLOODCELL_DOCS_SCREENSHOT"):  # reviewed, not yet signed off: the working view
        first.set_window_size(1400, 1500)
        first.execute_script("window.scrollTo(0, 0)")
        assert first.save_screenshot(str(REPO / "docs" / "review.png"))
    button = first.find_element(By.XPATH, "//button[contains(., 'Sign off slide')]")
    first.execute_script("arguments[0].scrollIntoView({block: 'center'})", button)
    button.click()
    _wait_text(first, ".q-page", "Signed off by local")
    _wait_text(first, ".bc-trail", "sign-off")
    reviewed = _text(first, ".bc-review-report")
    trail = _trail(first)
    assert len(trail) == 10 and "sign-off" in trail[0]  # newest first, ten a page
    long_tasks = first.execute_script("return window.__longTasks")  # upload and review, not screenshots
    web._full_page_screenshot(first, ARTIFACTS / "review.png")

    first.refresh()
    _wait_text(first, ".q-page", "Signed off by local")
    _wait_text(first, ".bc-trail", "sign-off")
    assert _text(first, ".bc-review-report") == reviewed
    assert _trail(first) == trail

    second = _chromium(tmp_path)
    browsers.append(second)
    second.get(slide_url)
    _wait_text(second, ".q-page", "Signed off by local")
    _wait_text(second, ".bc-trail", "sign-off")
    assert _text(second, ".bc-review-report") == reviewed
    assert _trail(second) == trail
    second.get(f"{url}slides")
    _wait_text(second, ".bc-slide-row", "signed off")

    # phone width: no page scrolls sideways, and History shows whole names
    phone = {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True}
    second.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", phone)
    for path in ("", "slides", "slides/BR-0001", "history", "model"):
        second.get(url + path)
        _wait_text(second, ".q-page", "Research tool")
        _wait_text(second, "body", {"slides/BR-0001": "Audit trail", "history": "results", "": "Progress",
                                    "slides": "signed off", "model": "version"}[path])
        wide = second.execute_script("return document.documentElement.scrollWidth")
        assert wide <= 390, f"/{path} is {wide} px wide at phone width"
        if path == "history":
            cut = second.execute_script(
                "return [...document.querySelectorAll('.bc-history-row .font-medium')]"
                ".filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.textContent)"
            )
            assert cut == []
        if path == "slides/BR-0001":
            second.save_screenshot(str(ARTIFACTS / "review-phone.png"))

    (ARTIFACTS / "review-long-tasks.json").write_text(
        json.dumps({"slide_images": 20, "long_tasks_ms": long_tasks, "max_ms": max(long_tasks, default=0)})
    )
    for driver in browsers:
        console = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert console == [], console
    log = log_path.read_text(errors="replace")
    assert " ERROR " not in log and "Traceback" not in log, log
