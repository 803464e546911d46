"""Sign-in flood: the web app's peak memory under 100 concurrent wrong passwords (target <= 400 MB).

Starts ``bloodcell webapp`` beyond loopback with one account, then sends 100
sign-ins with wrong passwords at the same instant, each for a different name and
from a different address (``X-Forwarded-For``, trusted from loopback), so the
per-name and per-address limits let every one reach the password check: the
worst case for memory, where only ``WEB_SIGNIN_HASHES`` bounds it. The peak is
the kernel's own ``VmHWM`` of the process. Not a timed test: run it by hand.

    python bench/signin_flood.py [--requests 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from common import REPO, model_dir

_TOKEN = re.compile(r'name="csrf" value="([^"]+)"')


def _vm_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _flood(base: str, count: int, round_no: int) -> Counter[int]:
    browsers = [requests.Session() for _ in range(count)]
    tokens = [_TOKEN.search(b.get(base + "/signin", timeout=60).text).group(1) for b in browsers]  # type: ignore[union-attr]
    start = threading.Barrier(count)

    def attempt(i: int) -> int:
        start.wait()
        data = {"name": f"nobody-{round_no}-{i}", "password": "wrong guess", "csrf": tokens[i]}
        headers = {"X-Forwarded-For": f"10.{round_no}.{i // 250}.{i % 250 + 1}"}
        return browsers[i].post(base + "/signin", data=data, headers=headers, timeout=300).status_code

    with ThreadPoolExecutor(count) as pool:
        return Counter(pool.map(attempt, range(count)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "src"))
    from bloodcell.web.accounts import hash_line

    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ)
        env.update(
            HOST="0.0.0.0",
            PORT=str(port),
            STORAGE_SECRET="bench-secret-" + "x" * 20,
            WEB_ACCOUNTS=hash_line("alice", "the right password"),
            BLOODCELL_STORAGE="local",
            BLOODCELL_DATA_DIR=str(Path(tmp) / "data"),
            MODEL_DIR=str(model_dir()),
            PYTHONPATH=str(REPO / "src"),
        )
        with (Path(tmp) / "webapp.log").open("w") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "bloodcell.cli", "webapp"], env=env, stdout=log, stderr=log
            )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if requests.get(base + "/healthz", timeout=2).ok:
                        break
                except requests.RequestException:
                    pass
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("the web app did not start")
                time.sleep(0.5)
            idle_kb = _vm_kb(proc.pid, "VmRSS")
            answers: Counter[int] = Counter()
            started = time.monotonic()
            for round_no in range(args.rounds):
                answers += _flood(base, args.requests, round_no)
            report = {
                "requests": args.requests * args.rounds,
                "concurrent": args.requests,
                "answers": dict(sorted(answers.items())),
                "idle_rss_mb": round(idle_kb / 1024, 1),
                "peak_rss_mb": round(_vm_kb(proc.pid, "VmHWM") / 1024, 1),
                "target_mb": 400,
                "seconds": round(time.monotonic() - started, 1),
            }
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
