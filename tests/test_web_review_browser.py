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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support import browser as chromium
from tests.support.browser import ARTIFACTS
from tests.support.common import REPO

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(chromium.missing() is not None, reason=str(chromium.missing())),
]


def _trail(driver: Any) -> list[str]:
    from selenium.webdriver.common.by import By

    return [row.text for row in driver.find_elements(By.CSS_SELECTOR, ".bc-trail tbody tr")]


def test_a_twenty_cell_slide_reviewed_by_keyboard_then_signed_off(
    browser_stack: tuple[str, Path], browsers: Callable[..., Any], datasets: Path
) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    url, log_path = browser_stack
    simple = datasets / "kaggle-blood-cells" / "TEST_SIMPLE"
    picks = {"NEUTROPHIL": 8, "LYMPHOCYTE": 5, "MONOCYTE": 3, "EOSINOPHIL": 4}
    files = [p for label, n in picks.items() for p in sorted((simple / label).glob("*.jpeg"))[:n]]
    assert len(files) == 20
    first = browsers(probe=True)
    slide_url = f"{url}slides/BR-0001"
    first.get(slide_url)
    chromium.wait_text(first, ".q-page", "Slide BR-0001")
    first.find_element(By.CSS_SELECTOR, ".bc-slide-upload input[type=file]").send_keys(
        "\n".join(str(p) for p in files)
    )
    chromium.wait_text(first, ".q-page", "20 images")
    chromium.wait_text(first, ".bc-review-report", "0 waiting")
    chromium.wait_text(first, ".bc-review-report", "20 not reviewed yet")

    # keyboard only: X for the first cell, then approve; the selection moves on by itself
    keys = ActionChains(first)
    body = first.find_element(By.TAG_NAME, "body")
    keys.move_to_element_with_offset(body, 0, 0)
    for index in range(20):
        keys.send_keys("x" if index == 0 else "a")
        keys.pause(0.05)
    keys.perform()
    chromium.wait_text(first, ".bc-review-report", "0 not reviewed yet")
    chromium.wait_text(first, ".bc-review-report", "1 not a white cell")
    if os.environ.get("BLOODCELL_DOCS_SCREENSHOT"):  # reviewed, not yet signed off: the working view
        first.set_window_size(1400, 1500)
        first.execute_script("window.scrollTo(0, 0)")
        assert first.save_screenshot(str(REPO / "docs" / "review.png"))
    button = first.find_element(By.XPATH, "//button[contains(., 'Sign off slide')]")
    first.execute_script("arguments[0].scrollIntoView({block: 'center'})", button)
    button.click()
    chromium.wait_text(first, ".q-page", "Signed off by local")
    chromium.wait_text(first, ".bc-trail", "sign-off")
    reviewed = chromium.text(first, ".bc-review-report")
    trail = _trail(first)
    assert len(trail) == 10 and "sign-off" in trail[0]  # newest first, ten a page
    long_tasks = first.execute_script("return window.__longTasks")  # upload and review, not screenshots
    chromium.full_page_screenshot(first, ARTIFACTS / "review.png")

    first.refresh()
    chromium.wait_text(first, ".q-page", "Signed off by local")
    chromium.wait_text(first, ".bc-trail", "sign-off")
    assert chromium.text(first, ".bc-review-report") == reviewed
    assert _trail(first) == trail

    second = browsers()
    second.get(slide_url)
    chromium.wait_text(second, ".q-page", "Signed off by local")
    chromium.wait_text(second, ".bc-trail", "sign-off")
    assert chromium.text(second, ".bc-review-report") == reviewed
    assert _trail(second) == trail
    second.get(f"{url}slides")
    chromium.wait_text(second, ".bc-slide-row", "signed off")

    # phone width: no page scrolls sideways, and History shows whole names
    phone = {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True}
    second.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", phone)
    for path in ("", "slides", "slides/BR-0001", "history", "model"):
        second.get(url + path)
        chromium.wait_text(second, ".q-page", "Research tool")
        chromium.wait_text(
            second,
            "body",
            {
                "slides/BR-0001": "Audit trail",
                "history": "results",
                "": "Progress",
                "slides": "signed off",
                "model": "version",
            }[path],
        )
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
    for driver in (first, second):
        console = chromium.severe_console(driver)
        assert console == [], console
    log = log_path.read_text(errors="replace")
    assert " ERROR " not in log and "Traceback" not in log, log


DROP_FILES = """
const [count, done] = [arguments[0], arguments[arguments.length - 1]];
const canvas = Object.assign(document.createElement('canvas'), {width: 64, height: 64});
const context = canvas.getContext('2d');
const files = [];
for (let i = 0; i < count; i += 1) {
  context.fillStyle = `rgb(${200 - i}, 120, 180)`;
  context.fillRect(0, 0, 64, 64);
  const blob = await new Promise(ok => canvas.toBlob(ok, 'image/png'));
  files.push(new File([blob], `goutte ${i}.png`, {type: 'image/png'}));
}
const data = new DataTransfer();
files.forEach(file => data.items.add(file));
const target = document.querySelector('.bc-slide-upload');
for (const type of ['dragenter', 'dragover', 'drop']) {
  target.dispatchEvent(new DragEvent(type, {dataTransfer: data, bubbles: true, cancelable: true}));
}
done(document.querySelectorAll('.q-uploader__dnd').length);
"""


def test_files_dropped_on_a_slide_are_added_a_few_at_a_time_and_all_stored(
    browser_stack: tuple[str, Path], browsers: Callable[..., Any]
) -> None:
    """A drop of more files than one batch of ADDED_AT_ONCE: every one is stored, once."""
    from bloodcell.web.slide_upload import ADDED_AT_ONCE

    url, log_path = browser_stack
    count = ADDED_AT_ONCE + 5
    driver = browsers()
    driver.get(f"{url}slides/DROP-2")
    chromium.wait_text(driver, ".q-page", "Slide DROP-2")
    chromium.wait_text(driver, ".q-page", "0 images")

    overlays = driver.execute_async_script(DROP_FILES, count)
    chromium.wait_text(driver, ".q-page", f"{count} of {count} chosen stored")
    chromium.wait_text(driver, ".q-page", f"{count} images")

    stored = [
        path.name.split("-", 1)[1] for path in (log_path.parent / "data" / "uploads" / "DROP-2").iterdir()
    ]
    assert overlays == 0  # the drop overlay went away as after any drop
    assert sorted(stored) == sorted(f"goutte_{i}.png" for i in range(count))  # each once
    assert chromium.severe_console(driver) == []
