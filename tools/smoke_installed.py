"""Run bloodcell as a user who ran `pip install bloodcell` would: from a built wheel, outside the checkout.

Called by `nox -s package` twice: once with the core install (`--expect-no-web`),
once with the `web` extra. Exits non-zero with a message at the first broken step.
Nothing here imports bloodcell: it drives the installed `bloodcell` command only.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def fail(message: str) -> None:
    sys.exit(f"smoke: {message}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bloodcell", *args], capture_output=True, text=True, timeout=120)


def serve_and_classify(image: Path, work: Path, *extra: str) -> None:
    data = work / "data"
    port = free_port()
    argv = ["bloodcell", "serve", "--data-dir", str(data), "--port", str(port), *extra]
    log = work / "serve.log"
    work.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 90
        while "bloodcell ready" not in log.read_text() and process.poll() is None:
            if time.monotonic() > deadline:
                fail(f"`{' '.join(argv)}` not ready within 90 s: {log.read_text()[-3000:]}")
            time.sleep(0.1)
        if process.poll() is not None:
            fail(f"`{' '.join(argv)}` exited with {process.returncode}: {log.read_text()[-3000:]}")
        if "--no-web" not in extra:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as page:
                if page.status != 200:
                    fail(f"web app answered {page.status}")
        name = "lame 1/cellule é.jpg"
        (data / "uploads" / "lame 1").mkdir(parents=True, exist_ok=True)
        shutil.copy(image, data / "uploads" / name)
        result_path = data / "results" / (name + ".json")
        deadline = time.monotonic() + 60
        while not result_path.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        if not result_path.exists():
            fail(f"no result for {name!r} within 60 s")
        time.sleep(0.2)  # written atomically, but let the archive copy settle before stopping
        result = json.loads(result_path.read_text())
        if result["status"] != "classified":
            fail(f"installed serve did not classify the image: {result}")
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            fail("serve did not stop within 30 s of SIGTERM")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("image", type=Path)
    parser.add_argument("--expect-no-web", action="store_true", help="the web extra is not installed")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bloodcell-smoke-"))

    helped = run("--help")
    if helped.returncode != 0 or "bloodcell classify" not in helped.stdout:
        fail(f"--help: {helped.stdout}{helped.stderr}")
    for command in ("serve", "classify", "eventsource", "webapp"):
        if "example" not in run(command, "--help").stdout:
            fail(f"`bloodcell {command} --help` shows no example")

    classified = run("classify", str(args.image), "--json")
    if classified.returncode != 0 or json.loads(classified.stdout)["status"] != "classified":
        fail(f"classify: {classified.stdout}{classified.stderr}")
    empty = work / "empty"
    empty.mkdir()
    nothing = run("classify", str(empty))
    if nothing.returncode == 0 or "no image files" not in nothing.stderr:
        fail(f"classify on an empty folder should say so: {nothing.stdout}{nothing.stderr}")

    serve_and_classify(args.image, work / "pipeline", "--no-web")
    if args.expect_no_web:
        refused = run("serve", "--data-dir", str(work / "noweb"), "--port", str(free_port()))
        if refused.returncode == 0 or "bloodcell[web]" not in refused.stderr or "Traceback" in refused.stderr:
            fail(f"serve without the web extra should name the extra: {refused.stderr[-2000:]}")
    else:
        serve_and_classify(args.image, work / "web")
    shutil.rmtree(work, ignore_errors=True)
    print("smoke: installed bloodcell works" + (" (pipeline only)" if args.expect_no_web else " (with web)"))


if __name__ == "__main__":
    main()
