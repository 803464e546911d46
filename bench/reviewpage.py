"""The slide page in headless Chromium with hundreds of images: long tasks while uploading and reviewing.

``bloodcell serve`` runs the whole stack; Chromium uploads N real cell images onto
one slide through the page's file input, then (after a reload) approves every cell
with the A key. The page's own Performance API records each main-thread task over
50 ms (``longtask``) in both phases (the upload phase from the moment files are
chosen: the empty page's first load is reported apart), and for each frame over 200 ms which scripts ran
in it (Long Animation Frames); each key is also timed from press to the page
showing the next cell. Figures only: nothing is asserted (issue 15 asks for no task
over 200 ms).

Needs Debian's chromium and chromium-driver and the selenium package; without them
the step reports why it was skipped.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from common import REPO, summary

sys.path.insert(0, str(REPO))  # the browser helpers the tests use: tests/support/browser.py
from tests.support import browser as chromium

SLIDE = "BENCH-300"


def _tasks(durations: list[float]) -> dict[str, Any]:
    return {
        "long_tasks": len(durations),
        "over_200ms": sum(1 for d in durations if d > 200),
        "max_ms": round(max(durations, default=0.0), 1),
        "total_ms": round(sum(durations), 1),
    }


def _frames(frames: list[dict[str, Any]]) -> dict[str, Any]:
    """What ran in the frames over 200 ms: the longest few, and script time by invoker."""
    by_invoker: Counter[str] = Counter()
    for frame in frames:
        for script in frame["scripts"]:
            by_invoker[f"{script['invoker']} ({script['source'].strip()})"] += script["ms"]
    longest = sorted(frames, key=lambda f: -f["duration"])[:3]
    return {"frames_over_200ms": len(frames), "script_ms_by_invoker": dict(by_invoker.most_common(5))} | (
        {"longest": longest} if longest else {}
    )


def run(model_dir: Path, images: list[Path], work: Path) -> dict[str, Any]:
    if reason := chromium.missing():
        return {"skipped": reason}
    log_path = work / "reviewpage-serve.log"
    driver = None
    try:
        with chromium.served(
            work / "reviewpage-data",
            log_path,
            model_dir,
            timeout=180,
            BLOODCELL_STORAGE="local",
            ARCHIVE_STORAGE="local",
            STORAGE_SECRET="bench",
        ) as base:
            from selenium.common.exceptions import TimeoutException
            from selenium.webdriver.common.by import By

            wait = chromium.wait_content  # reads textContent: polling costs the page ~nothing
            n = len(images)
            driver = chromium.chromium(work, probe=True)
            driver.get(f"{base}slides/{SLIDE}")
            wait(driver, ".q-page", f"Slide {SLIDE}", 60)
            time.sleep(1.0)  # the empty page settles; its first load is counted apart, not as upload
            first_load = _tasks(driver.execute_script("return window.__longTasks"))
            driver.execute_script("window.__longTasks = []; window.__longFrames = []")
            started = time.perf_counter()
            driver.find_element(By.CSS_SELECTOR, ".bc-slide-upload input[type=file]").send_keys(
                "\n".join(str(p) for p in images)
            )
            wait(driver, ".q-page", rf"(^|\D){n} of {n} chosen stored", 600)
            upload_s = time.perf_counter() - started
            wait(driver, ".bc-review-report", r"(^|\D)0 waiting", 600)
            wait(driver, ".q-page", rf"(^|\D){n} images", 60)
            upload = _tasks(driver.execute_script("return window.__longTasks"))
            upload_frames = _frames(driver.execute_script("return window.__longFrames"))

            driver.refresh()  # the review phase starts from a fresh page, as a reviewer's would
            wait(driver, ".bc-selected-cell", f"^1 of {n} ", 120)
            load_tasks = list(driver.execute_script("return window.__longTasks"))
            load_frames = len(driver.execute_script("return window.__longFrames"))
            body = driver.find_element(By.TAG_NAME, "body")
            keys: list[float] = []
            for index in range(1, n):
                pressed = time.perf_counter()
                body.send_keys("a")
                try:
                    wait(driver, ".bc-selected-cell", f"^{index + 1} of {n} ", 60)
                except TimeoutException:
                    break  # a rejected image (nothing to approve) ends the run of A keys
                keys.append((time.perf_counter() - pressed) * 1000)
            else:
                body.send_keys("a")
            wait(driver, ".bc-review-report", r"(^|\D)0 not reviewed yet", 120)
            review = _tasks(driver.execute_script("return window.__longTasks")[len(load_tasks) :])
            review_frames = _frames(driver.execute_script("return window.__longFrames")[load_frames:])
            return {
                "images": n,
                "upload": upload | {"wall_s": round(upload_s, 1)} | upload_frames,
                "first_load": first_load,
                "page_load": _tasks(load_tasks),
                "review": review | {"key_to_next_cell_ms": summary(keys, 1)} | review_frames,
            }
    except RuntimeError as exc:  # serve did not start
        return {"skipped": str(exc).splitlines()[0] + f"; see {log_path}"}
    finally:
        if driver is not None:
            chromium.close(driver)
