"""Headless Chromium for the browser tests and the review-page benchmark, started one way.

Debian's chromium and chromium-driver drive the real page through selenium; the
stack it talks to is a real `bloodcell serve` in its own process group. The
fixtures built from these live in tests/conftest.py; bench/reviewpage.py uses
them directly.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.support.common import REPO, SHIPPED_MODEL, free_port
from tests.support.stack import clean_env, stop_process_group

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
ARTIFACTS = REPO / "test-artifacts"

# Every main-thread task over 50 ms (``longtask``), and for each animation frame over
# 200 ms what ran in it (Long Animation Frames: which script, invoked by what, and how
# long style/layout took), recorded from the page's first script on.
PERFORMANCE_PROBE = """
window.__longTasks = [];
window.__longFrames = [];
new PerformanceObserver(list => {
  for (const entry of list.getEntries()) window.__longTasks.push(entry.duration);
}).observe({type: 'longtask', buffered: true});
try {
  new PerformanceObserver(list => {
    for (const f of list.getEntries()) {
      if (f.duration <= 200) continue;
      window.__longFrames.push({
        duration: Math.round(f.duration),
        blocking: Math.round(f.blockingDuration),
        style_layout: f.styleAndLayoutStart
          ? Math.round(f.startTime + f.duration - f.styleAndLayoutStart) : 0,
        scripts: f.scripts.map(s => ({
          invoker: s.invoker,
          source: (s.sourceURL || '').split('/').pop() + ' ' + (s.sourceFunctionName || ''),
          ms: Math.round(s.duration),
          forced_layout_ms: Math.round(s.forcedStyleAndLayoutDuration),
        })),
      });
    }
  }).observe({type: 'long-animation-frame', buffered: true});
} catch (error) { /* a Chromium without Long Animation Frames: long tasks only */ }
"""


def missing() -> str | None:
    """Why no browser test can run here, or None."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        return "needs Debian's chromium and chromium-driver packages"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "needs the selenium package"
    return None


def model_dir() -> Path | None:
    """The shipped model, or an override for a checkout without it; None when there is none."""
    for candidate in (SHIPPED_MODEL, os.environ.get("BLOODCELL_TEST_MODEL_DIR"), "/tmp/provmodel"):
        if candidate and (Path(candidate) / "model.tflite").is_file():
            return Path(candidate)
    return None


def chromium(parent: Path, width: int = 1400, height: int = 1200, probe: bool = False) -> Any:
    """A headless Chromium with its own profile under ``parent`` (two share nothing but the server).

    With ``probe`` the page records long tasks and long frames (``PERFORMANCE_PROBE``).
    Close it with ``close``, which removes the profile too.
    """
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=parent)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    if probe:
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": PERFORMANCE_PROBE})
    driver.profile_dir = profile  # type: ignore[attr-defined]  # for close()
    return driver


def close(driver: Any) -> None:
    try:
        driver.quit()
    finally:
        shutil.rmtree(driver.profile_dir, ignore_errors=True)


def text(driver: Any, css: str) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.CSS_SELECTOR, css).text)


def wait_text(driver: Any, css: str, wanted: str, timeout: float = 120, poll: float = 0.2) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout, poll_frequency=poll).until(
        ec.text_to_be_present_in_element((By.CSS_SELECTOR, css), wanted)
    )


def open_and_upload(driver: Any, url: str, files: list[Path], picker: str = ".bc-upload") -> Any:
    """Open ``url`` and choose ``files`` in the upload widget marked by ``picker``; returns a 90 s wait."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    wait = WebDriverWait(driver, 90, poll_frequency=0.2)
    chooser = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, f"{picker} input[type=file]")))
    chooser.send_keys("\n".join(str(path) for path in files))
    return wait


def wait_content(driver: Any, css: str, pattern: str, timeout: float = 120, poll: float = 0.05) -> None:
    """Until the ``textContent`` of ``css`` matches the JavaScript regular expression ``pattern``.

    Unlike ``wait_text`` no layout is forced, so a benchmark polling 20 times a second
    measures the page, not selenium's visible-text atom (which styles every node it
    reads, and was most of the page's main-thread time while the bench waited).
    """
    from selenium.webdriver.support.ui import WebDriverWait

    probe = (
        "const e = document.querySelector(arguments[0]);"
        " return !!e && new RegExp(arguments[1]).test(e.textContent)"
    )
    WebDriverWait(driver, timeout, poll_frequency=poll).until(lambda d: d.execute_script(probe, css, pattern))


def severe_console(driver: Any) -> list[Any]:
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def full_page_screenshot(driver: Any, path: Path, width: int = 1400) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script("return document.body.scrollHeight")
    driver.set_window_size(width, max(900, min(int(height) + 120, 4000)))
    time.sleep(0.5)  # let the charts redraw at the new size
    assert driver.save_screenshot(str(path))


@contextlib.contextmanager
def served(
    data_dir: Path, log_path: Path, models: Path, *args: str, timeout: float = 120, **env: str
) -> Iterator[str]:
    """`bloodcell serve` (the whole local stack) until it logs "bloodcell ready"; yields its URL.

    ``args`` go to `serve` (e.g. ``--host 0.0.0.0`` for sign-in); ``env`` adds settings.
    """
    port = free_port()
    values = clean_env(models, **env)
    values["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), values.get("PYTHONPATH")]))
    argv = [sys.executable, "-m", "bloodcell.cli", "serve", "--data-dir", str(data_dir), "--port", str(port)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*argv, *args], env=values, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + timeout
        while "bloodcell ready" not in log_path.read_text(errors="replace"):
            if process.poll() is not None:
                raise RuntimeError(f"bloodcell serve exited:\n{log_path.read_text(errors='replace')}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"bloodcell serve did not start:\n{log_path.read_text(errors='replace')}")
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/"
    finally:
        stop_process_group(process, timeout=30)


def click(driver: Any, words: str, within: str = "body") -> None:
    """Click the visible button saying ``words`` inside ``within`` (a CSS selector), scrolled into view."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    path = (
        f"//button[normalize-space(.)={xpath_text(words)} or .//span[normalize-space(.)={xpath_text(words)}]]"
    )
    scope = WebDriverWait(driver, 60).until(ec.presence_of_element_located((By.CSS_SELECTOR, within)))
    button = WebDriverWait(driver, 60).until(
        lambda _d: next((b for b in scope.find_elements(By.XPATH, "." + path) if b.is_displayed()), None)
    )
    # the button's own click: the sticky review bar or a notification may lie over it for a moment
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].click()", button)


def xpath_text(value: str) -> str:
    """An XPath string literal for ``value`` (no quote characters expected in test words)."""
    assert "'" not in value
    return f"'{value}'"


def type_into(driver: Any, css: str, value: str) -> None:
    """Replace the text of the visible input or textarea ``css`` (a dialog's field, say) with ``value``."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    field = WebDriverWait(driver, 60).until(ec.visibility_of_element_located((By.CSS_SELECTOR, css)))
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(Keys.DELETE)
    field.send_keys(value)


def fetch(driver: Any, url: str) -> bytes:
    """GET ``url`` with the browser's cookies (its signed-in session), as the user's download would."""
    import requests

    cookies = {c["name"]: c["value"] for c in driver.get_cookies()}
    answer = requests.get(url, cookies=cookies, timeout=120)
    answer.raise_for_status()
    return answer.content


def pdf_text(data: bytes, folder: Path) -> list[str]:
    """Each page's text as poppler's ``pdftotext -raw`` reads it (rotated words: one letter a line)."""
    path = folder / "report.pdf"
    path.write_bytes(data)
    done = subprocess.run(["pdftotext", "-raw", str(path), "-"], capture_output=True, text=True, check=True)
    return done.stdout.split("\f")[:-1]
