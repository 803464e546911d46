"""Sessions that end, forms that need their token, and the websocket checked against the session.

The app runs as ``bloodcell webapp`` beyond loopback, spoken to over real HTTP and
with the real python-socketio client, the accounts in a file the ``bloodcell
user`` commands edit while it runs.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
import requests
import socketio

from bloodcell.web import auth
from bloodcell.web.accounts import Account, AccountBook
from bloodcell.web.sessions import DeviceCookies, SessionStore
from tests.support.page_socket import PageSocket, open_page
from tests.support.signin import csrf, page_token, sign_in
from tests.support.stack import wait_for, webapp_process

PASSWORD = "correct horse battery"


@pytest.fixture
def accounts_file(tmp_path: Path) -> Path:
    file = tmp_path / "accounts.txt"
    lines = [auth.hash_line("alice", PASSWORD), auth.hash_line("rémi", PASSWORD, ("reviewer",))]
    file.write_text("\n".join(lines) + "\n")
    return file


@pytest.fixture
def app(tmp_path: Path, model_dir: Path, accounts_file: Path) -> Iterator[str]:
    secret = "test-secret-" + "x" * 20
    env = {"STORAGE_SECRET": secret, "WEB_ACCOUNTS_FILE": str(accounts_file)}
    with webapp_process(tmp_path, model_dir, "0.0.0.0", **env) as (base, _):
        yield base


def _user(*args: str, password: str | None = None) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bloodcell.cli", "user", *args],
        input=(password or "") + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr


def _signed_in(app: str, name: str) -> requests.Session:
    browser = requests.Session()
    assert sign_in(browser, app, name, PASSWORD).status_code == 303
    return browser


def _replay(app: str, cookies: Mapping[str, str | None], path: str) -> int:
    """A saved cookie, sent again from somewhere else."""
    jar = {name: value for name, value in cookies.items() if value is not None}
    return requests.get(app + path, cookies=jar, allow_redirects=False, timeout=30).status_code


def _sign_out(browser: requests.Session, app: str, page: str = "/slides") -> requests.Response:
    token = page_token(browser.get(app + page, timeout=30).text)
    return browser.post(app + "/signout", data={"csrf": token}, allow_redirects=False, timeout=30)


# ---- sessions end ----


def test_a_saved_cookie_is_refused_after_sign_out(app: str) -> None:
    alice = _signed_in(app, "alice")
    saved = alice.cookies.get_dict()
    assert _replay(app, saved, "/slides") == 200

    out = _sign_out(alice, app)

    assert out.status_code == 303 and out.headers["location"] == "/signin"
    assert _replay(app, saved, "/slides") == 303
    assert _replay(app, saved, "/slides/lame-1/report.csv") == 303


def test_sign_out_is_a_post_with_the_page_token(app: str) -> None:
    alice = _signed_in(app, "alice")

    by_get = alice.get(app + "/signout", allow_redirects=False, timeout=30)
    without_token = alice.post(app + "/signout", allow_redirects=False, timeout=30)
    still_in = alice.get(app + "/slides", allow_redirects=False, timeout=30)

    assert by_get.status_code == 405
    assert without_token.status_code == 403
    assert still_in.status_code == 200


def test_sign_in_needs_the_form_token_from_this_browser(app: str) -> None:
    victim = requests.Session()
    attacker_token = csrf(requests.Session(), app)  # a token from another browser
    forged = {"name": "alice", "password": PASSWORD, "csrf": attacker_token}

    no_token = victim.post(app + "/signin", data={"name": "alice", "password": PASSWORD}, timeout=30)
    foreign = victim.post(app + "/signin", data=forged, allow_redirects=False, timeout=30)
    token = csrf(victim, app)
    other_site = victim.post(
        app + "/signin",
        data={"name": "alice", "password": PASSWORD, "csrf": token},
        headers={"Origin": "https://evil.example"},
        allow_redirects=False,
        timeout=30,
    )

    assert no_token.status_code == foreign.status_code == other_site.status_code == 403
    assert victim.get(app + "/slides", allow_redirects=False, timeout=30).status_code == 303


def test_removing_an_account_ends_its_sessions_without_a_restart(app: str, accounts_file: Path) -> None:
    alice = _signed_in(app, "alice")
    saved = alice.cookies.get_dict()

    _user("remove", "alice", "--file", str(accounts_file))

    assert _replay(app, saved, "/slides/lame-1/report.csv") == 303
    assert sign_in(requests.Session(), app, "alice", PASSWORD).status_code == 401


def test_a_demoted_reviewer_loses_the_role_at_once(app: str, accounts_file: Path) -> None:
    remi = _signed_in(app, "rémi")
    saved = remi.cookies.get_dict()

    _user("set-role", "rémi", "--file", str(accounts_file))
    again = _signed_in(app, "rémi")

    assert _replay(app, saved, "/slides") == 303  # the reviewer's session ended
    assert again.get(app + "/slides", allow_redirects=False, timeout=30).status_code == 200
    assert AccountBook("", accounts_file).current()["rémi"].roles == {"user"}


def test_a_new_password_ends_old_sessions_and_a_new_account_needs_no_restart(
    app: str, accounts_file: Path
) -> None:
    alice = _signed_in(app, "alice")
    saved = alice.cookies.get_dict()

    _user("add", "alice", "--file", str(accounts_file), password="a brand new password")
    _user("add", "chloé", "--file", str(accounts_file), password="chloé's password")

    assert _replay(app, saved, "/slides") == 303
    assert sign_in(requests.Session(), app, "alice", "a brand new password").status_code == 303
    assert sign_in(requests.Session(), app, "chloé", "chloé's password").status_code == 303


def test_sessions_end_when_idle_too_long_or_too_old() -> None:
    now = [0.0]
    store = SessionStore(idle=60.0, lifetime=600.0, clock=lambda: now[0])
    alice = Account("alice", frozenset({"user"}), "$argon2id$x")
    accounts = {"alice": alice}
    idle, busy = store.open(alice), store.open(alice)

    for _ in range(10):
        now[0] += 55.0
        assert store.resolve(busy, accounts) == alice
    now[0] += 55.0

    assert store.resolve(idle, accounts) is None  # unused for 605 s
    assert store.resolve(busy, accounts) is None  # used every 55 s, but signed in 605 s ago


def test_a_session_follows_its_account_and_the_table_is_bounded() -> None:
    store = SessionStore(idle=60.0, lifetime=600.0, max_sessions=3)
    remi = Account("rémi", frozenset({"user", "reviewer"}), "$argon2id$x")
    sid = store.open(remi)
    others = [store.open(remi) for _ in range(3)]
    oldest = others[0]

    demoted = {"rémi": Account("rémi", frozenset({"user"}), "$argon2id$x")}

    assert len(store) == 3 and store.resolve(sid, {"rémi": remi}) is None  # the oldest of 4 went
    assert store.resolve(oldest, demoted) is None
    assert store.resolve(oldest, {"rémi": remi}) is None  # ended for good, not just refused once


def test_a_device_cookie_is_for_its_accounts_and_this_secret_only() -> None:
    devices = DeviceCookies("s" * 32)
    cookie = devices.remember(None, "alice")

    assert devices.device_for(cookie, "alice") is not None
    assert devices.device_for(cookie, "bob") is None
    assert DeviceCookies("t" * 32).device_for(cookie, "alice") is None
    assert devices.device_for(cookie[:-2] + "xx", "alice") is None


# ---- the websocket ----


def _slide_created(tmp_path: Path, slide: str) -> bool:
    return any((tmp_path / "data" / "results" / "_review" / slide).glob("*-create.json"))


def test_a_socket_needs_the_session_of_its_page(app: str) -> None:
    alice = _signed_in(app, "alice")
    bob = _signed_in(app, "rémi")
    page = open_page(alice, app, "/slides")

    with pytest.raises(socketio.exceptions.ConnectionError):
        PageSocket(app, None, page.client_id)  # no session at all
    with pytest.raises(socketio.exceptions.ConnectionError):
        PageSocket(app, bob.cookies.get_dict(), page.client_id)  # another user's session
    own = open_page(bob, app, "/slides")
    socket = PageSocket(app, bob.cookies.get_dict(), own.client_id, implicit=False)
    refused = socket.handshake(page.client_id)  # bob's socket, alice's page
    socket.send(page, page.element("q-btn", "Open"), "click")

    assert refused is False
    assert socket.closed.wait(30)


def test_a_page_opened_before_sign_out_cannot_act(app: str, tmp_path: Path) -> None:
    alice = _signed_in(app, "alice")
    page = open_page(alice, app, "/slides")
    field, button = page.element("nicegui-input"), page.element("q-btn", "Open")
    socket = PageSocket(app, alice.cookies.get_dict(), page.client_id)
    socket.send(page, field, "update:value", "lame-001")
    socket.send(page, button, "click")
    wait_for("the first slide", lambda: ("open", "/slides/lame-001") in _opened(socket), timeout=60)
    saved = alice.cookies.get_dict()

    _sign_out(alice, app)
    closed = socket.closed.wait(30)

    assert closed and ("open", "/signin") in _opened(socket)
    with pytest.raises(socketio.exceptions.ConnectionError):
        PageSocket(app, saved, page.client_id)


def test_a_message_after_the_account_is_removed_is_dropped(
    app: str, tmp_path: Path, accounts_file: Path
) -> None:
    alice = _signed_in(app, "alice")
    page = open_page(alice, app, "/slides")
    field, button = page.element("nicegui-input"), page.element("q-btn", "Open")
    socket = PageSocket(app, alice.cookies.get_dict(), page.client_id)
    socket.send(page, field, "update:value", "lame-002")

    _user("remove", "alice", "--file", str(accounts_file))
    with contextlib.suppress(socketio.exceptions.BadNamespaceError):  # the sweep may have closed it first
        socket.send(page, button, "click")

    assert socket.closed.wait(30)
    assert ("open", "/signin") in _opened(socket)
    assert not _slide_created(tmp_path, "lame-002")


def _opened(socket: PageSocket) -> list[tuple[str, str]]:
    return [(event, data["path"]) for event, data in socket.received if event == "open"]
