"""Sign-in under a flood: limits counted before any hash, bounded memory, no lockout of a known device."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from bloodcell.web import auth
from bloodcell.web.accounts import AccountBook
from bloodcell.web.limiter import Busy, FailureLimiter, HashGate, TooManyAttempts
from tests.support.signin import csrf, sign_in
from tests.support.stack import webapp_process

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def lines() -> str:
    return "\n".join([auth.hash_line("alice", PASSWORD), auth.hash_line("bob", PASSWORD)])


@pytest.fixture
def app(tmp_path: Path, model_dir: Path, lines: str) -> Iterator[str]:
    secret = "test-secret-" + "x" * 20
    env = {"STORAGE_SECRET": secret, "WEB_ACCOUNTS": lines}
    with webapp_process(tmp_path, model_dir, "0.0.0.0", **env) as (base, _):
        yield base


def _together(count: int, attempt: object) -> list[object]:
    """Run ``attempt(i)`` in ``count`` threads released at the same instant."""
    start = threading.Barrier(count)

    def run(i: int) -> object:
        start.wait()
        try:
            return attempt(i)  # type: ignore[operator]
        except (TooManyAttempts, Busy) as exc:
            return exc

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def test_concurrent_wrong_passwords_never_evaluate_more_than_the_limit(lines: str) -> None:
    accounts = auth.Accounts(AccountBook(lines, None), max_failures=5)

    outcomes = _together(40, lambda i: accounts.check("alice", f"guess {i}", "10.0.0.1"))

    assert accounts.hashes == 5
    assert outcomes.count(None) == 5
    assert sum(isinstance(o, TooManyAttempts) for o in outcomes) == 35


def test_concurrent_wrong_passwords_over_http_are_counted_before_hashing(app: str) -> None:
    browsers = [requests.Session() for _ in range(40)]
    tokens = [csrf(browser, app) for browser in browsers]

    def attempt(i: int) -> int:
        data = {"name": "alice", "password": f"guess {i}", "csrf": tokens[i]}
        return browsers[i].post(app + "/signin", data=data, timeout=120).status_code

    codes = _together(40, attempt)

    assert codes.count(401) <= 5  # a 401 is an evaluated guess
    assert set(codes) <= {401, 429}
    assert sign_in(requests.Session(), app, "alice", "one more").status_code == 429


def test_the_limiter_table_stays_bounded_and_expires() -> None:
    now = [0.0]
    limiter = FailureLimiter(window=300.0, max_keys=500, clock=lambda: now[0])

    for i in range(18_000):
        limiter.charge({f"name:{i}": 5, f"client:10.{i // 250}.{i % 250}.1": 20})
    full = len(limiter)
    now[0] += 301.0
    limiter.charge({"name:late": 5})

    assert full <= 500
    assert len(limiter) == 1


def test_refused_attempts_add_nothing_to_the_table(lines: str) -> None:
    accounts = auth.Accounts(AccountBook(lines, None), per_address=20)
    for i in range(20):
        accounts.limiter.charge({f"name:{i}": 5, "client:10.0.0.9": 20})

    for i in range(18_000):
        with pytest.raises(TooManyAttempts):
            accounts.begin(f"someone {i}", "10.0.0.9")

    assert len(accounts.limiter) == 21
    assert accounts.hashes == 0


def test_the_hash_gate_bounds_running_checks_and_refuses_the_excess_at_once() -> None:
    async def scenario() -> tuple[int, int, bool, bool]:
        gate = HashGate(slots=2, reserved=1, queue=2, wait=30.0)
        release = asyncio.Event()
        inside = asyncio.Event()

        async def anonymous() -> str:
            try:
                async with gate.slot(known_device=False):
                    inside.set()
                    await release.wait()
                return "ran"
            except Busy:
                return "busy"

        first = asyncio.create_task(anonymous())
        await inside.wait()
        queued = [asyncio.create_task(anonymous()) for _ in range(2)]
        await asyncio.sleep(0)  # let both join the queue
        refused = await anonymous()  # queue full: refused at once, never waits
        async with gate.slot(known_device=True):  # the slot kept for known devices is free
            known_got_in = gate.running == 2
        release.set()
        results = await asyncio.gather(first, *queued)
        return gate.peak, results.count("ran"), refused == "busy", known_got_in

    peak, ran, refused, known_got_in = asyncio.run(scenario())

    assert peak == 2 and ran == 3
    assert refused and known_got_in


def test_a_known_device_gets_in_during_a_flood_against_its_account(app: str) -> None:
    alice = requests.Session()
    assert sign_in(alice, app, "alice", PASSWORD).status_code == 303  # this browser is now known
    assert "bloodcell-device" in alice.cookies
    browsers = [requests.Session() for _ in range(30)]
    tokens = [csrf(browser, app) for browser in browsers]
    alice_token = csrf(alice, app)

    def attempt(i: int) -> int:
        if i == 30:  # alice, from her known browser, in the middle of the flood
            data = {"name": "alice", "password": PASSWORD, "csrf": alice_token}
            return alice.post(app + "/signin", data=data, allow_redirects=False, timeout=120).status_code
        data = {"name": "alice", "password": f"guess {i}", "csrf": tokens[i]}
        return browsers[i].post(app + "/signin", data=data, timeout=120).status_code

    codes = _together(31, attempt)
    new_browser = sign_in(requests.Session(), app, "alice", PASSWORD)
    again = sign_in(alice, app, "alice", PASSWORD)

    assert codes[30] == 303
    assert new_browser.status_code == 429  # a browser never seen before waits out the window
    assert again.status_code == 303


def test_a_flood_from_a_shared_address_does_not_lock_out_a_known_device(app: str) -> None:
    bob = requests.Session()
    assert sign_in(bob, app, "bob", PASSWORD).status_code == 303
    # everyone here comes from 127.0.0.1: twenty failures for different names lock the address
    codes = [sign_in(requests.Session(), app, f"visitor{i}", "guess").status_code for i in range(21)]

    new_browser = sign_in(requests.Session(), app, "bob", PASSWORD)
    known = sign_in(bob, app, "bob", PASSWORD, "/history")

    assert codes[:20] == [401] * 20 and codes[20] == 429
    assert new_browser.status_code == 429
    assert known.status_code == 303 and known.headers["location"] == "/history"
    assert bob.get(app + "/history", allow_redirects=False, timeout=30).status_code == 200
