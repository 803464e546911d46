"""The web app in a real browser against the real local stack (`bloodcell serve`).

Headless Chromium from Debian's packages drives the page: it uploads a real cell
image and a text file renamed .jpg, waits for the predicted type and for the
rejection reason, and saves a screenshot as a test artifact. The stack's own log
must hold no ERROR line, and the browser console no error.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support import browser as chromium
from tests.support.browser import ARTIFACTS
from tests.support.common import REPO

WORDS = ("Eosinophil", "Lymphocyte", "Monocyte", "Neutrophil")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(chromium.missing() is not None, reason=str(chromium.missing())),
]


def test_upload_a_cell_image_and_see_its_type(
    browser_stack: tuple[str, Path], browser: object, datasets: Path, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    assert isinstance(browser, WebDriver)
    url, log_path = browser_stack
    cell = datasets / "bccd" / "JPEGImages" / "BloodImage_00001.jpg"
    fake = tmp_path / "notes.jpg"
    fake.write_text("Not a picture at all.\n")

    wait = chromium.open_and_upload(browser, url, [cell, fake])
    assert isinstance(wait, WebDriverWait)

    label = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, ".bc-label")))
    assert label.text in WORDS
    reason = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, ".bc-reason")))
    assert reason.text.startswith("Rejected by preprocess:")
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".q-page"), "2 of 2 chosen finished"))
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".q-page canvas")))
    chromium.full_page_screenshot(browser, ARTIFACTS / "webapp.png")

    console = chromium.severe_console(browser)
    assert console == [], console
    log = log_path.read_text(errors="replace")
    assert " ERROR " not in log and "Traceback" not in log, log


def test_a_dozen_cells_and_one_unreadable_file_all_finish(
    browser_stack: tuple[str, Path], browser: object, datasets: Path, tmp_path: Path
) -> None:
    """A slide-sized batch in the browser; with BLOODCELL_DOCS_SCREENSHOT=1 it also renews docs/webapp.png."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    simple = datasets / "kaggle-blood-cells" / "TEST_SIMPLE"
    picks = {"NEUTROPHIL": 6, "LYMPHOCYTE": 3, "MONOCYTE": 1, "EOSINOPHIL": 1}
    files = [path for label, n in picks.items() for path in sorted((simple / label).glob("*.jpeg"))[:n]]
    fake = tmp_path / "notes.jpg"
    fake.write_text("Not a picture at all.\n")
    url, _ = browser_stack
    wait = chromium.open_and_upload(browser, url, [*files, fake])
    total = len(files) + 1
    wait.until(
        ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".q-page"), f"{total} of {total} chosen finished")
    )
    chromium.full_page_screenshot(browser, ARTIFACTS / "webapp-batch.png")
    if os.environ.get("BLOODCELL_DOCS_SCREENSHOT"):
        chromium.full_page_screenshot(browser, REPO / "docs" / "webapp.png")
