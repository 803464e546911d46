"""Sign-in, against a real `bloodcell webapp` listening beyond loopback, over real HTTP."""

from __future__ import annotations

import functools
import http.server
import json
import subprocess
import sys
import threading
import time
from collections.abc import Generator, Iterator
from pathlib import Path

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec

from bloodcell.errors import ConfigurationError
from bloodcell.events import ObjectRef
from bloodcell.pipeline import Pipeline
from bloodcell.settings import Settings
from bloodcell.storage import LocalStorage
from bloodcell.web import auth
from bloodcell.web.results_feed import store_upload
from tests.support.common import image_bytes
from tests.support.signin import sign_in
from tests.support.stack import webapp_process

PASSWORD = "correct horse battery"
AUDIENCE = "/projects/123456/global/backendServices/987654"


def _webapp(tmp_path: Path, model_dir: Path, **env: str) -> Generator[str]:
    secret = "test-secret-" + "x" * 20
    with webapp_process(tmp_path, model_dir, "0.0.0.0", STORAGE_SECRET=secret, **env) as (base, _):
        yield base


@pytest.fixture
def accounts_app(tmp_path: Path, model_dir: Path) -> Iterator[str]:
    lines = "\n".join([auth.hash_line("alice", PASSWORD), auth.hash_line("rémi", PASSWORD, ("reviewer",))])
    yield from _webapp(tmp_path, model_dir, WEB_ACCOUNTS=lines)


@pytest.mark.parametrize(
    "path", ["/", "/history", "/model", "/thumb/cell.png", "/_nicegui/client/x/upload/1"]
)
def test_without_a_session_everything_redirects_to_sign_in(accounts_app: str, path: str) -> None:
    response = requests.get(accounts_app + path, allow_redirects=False, timeout=10)

    assert response.status_code == 303, (response.status_code, response.text[:500])
    assert response.headers["location"].startswith("/signin?next=")


def test_a_wrong_password_is_refused_and_a_right_one_gets_in(accounts_app: str) -> None:
    browser = requests.Session()

    wrong = sign_in(browser, accounts_app, "alice", "guess", "/history")
    still_out = browser.get(accounts_app + "/history", allow_redirects=False, timeout=10)
    right = sign_in(browser, accounts_app, "alice", PASSWORD, "/history")
    page = browser.get(accounts_app + "/history", allow_redirects=False, timeout=10)

    assert wrong.status_code == 401 and "wrong name or password" in wrong.text
    assert still_out.status_code == 303
    assert right.status_code == 303 and right.headers["location"] == "/history"
    assert page.status_code == 200


def test_failed_sign_ins_are_rate_limited(accounts_app: str) -> None:
    codes = [sign_in(requests.Session(), accounts_app, "rémi", f"guess {i}").status_code for i in range(6)]
    right_but_blocked = sign_in(requests.Session(), accounts_app, "rémi", PASSWORD)

    assert codes[:5] == [401] * 5 and codes[5] == 429
    assert right_but_blocked.status_code == 429 and "Retry-After" in right_but_blocked.headers


def test_sign_in_never_redirects_off_site(accounts_app: str) -> None:
    response = sign_in(requests.Session(), accounts_app, "alice", PASSWORD, "//evil.example/")

    assert response.headers["location"] == "/"


def test_sign_in_needs_accounts_and_a_storage_secret() -> None:
    from bloodcell.web import signin

    no_secret = Settings.from_env({"HOST": "0.0.0.0", "WEB_ACCOUNTS": auth.hash_line("a", PASSWORD)})
    no_accounts = Settings.from_env({"HOST": "0.0.0.0", "STORAGE_SECRET": "s" * 32})

    with pytest.raises(ConfigurationError, match="STORAGE_SECRET"):
        signin.install(no_secret)
    with pytest.raises(ConfigurationError, match="no accounts"):
        signin.install(no_accounts)
    assert auth.mode_for("127.0.0.1", "accounts") is auth.Mode.LOCAL


def test_account_lines_hold_a_hash_never_the_password() -> None:
    line = auth.hash_line("rémi", PASSWORD, ("reviewer",))

    checker = auth.Accounts(auth.AccountBook(line, None))

    assert PASSWORD not in line and line.startswith("rémi:reviewer,user:$argon2id$")
    assert checker.check("rémi", PASSWORD, "1.2.3.4") == auth.User("rémi", frozenset({"user", "reviewer"}))
    assert checker.check("rémi", "wrong", "1.2.3.4") is None


def test_user_add_prints_a_hash_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bloodcell.cli", "user", "add", "alice", "--role", "reviewer"],
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert proc.returncode == 0, proc.stderr
    line = proc.stdout.strip()
    assert line.startswith("alice:reviewer,user:$argon2id$") and PASSWORD not in proc.stdout
    assert "alice" in auth.parse_accounts(line, "stdout")


def test_an_upload_records_its_uploader(settings: Settings, local: LocalStorage) -> None:
    store_upload(settings, "cell.png", image_bytes(), "image/png", uploader="rémi")

    outcome = Pipeline(settings, local).preprocess(ObjectRef(settings.upload_bucket, "cell.png"))
    tensor = local.stat(settings.tensor_bucket, "cell.png.npy")

    assert outcome.status == "preprocessed"
    assert tensor is not None and tensor.metadata["uploader"] == "rémi"


# ---- Identity-Aware Proxy, with a locally generated ES256 key standing in for Google's ----


@pytest.fixture
def iap_key(tmp_path: Path) -> Iterator[tuple[ec.EllipticCurvePrivateKey, str]]:
    """A key pair, its public half served as a JWK set over HTTP as Google serves IAP's."""
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid="test-key", alg="ES256", use="sig")
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "jwk").write_text(json.dumps({"keys": [jwk]}))
    handler = functools.partial(_QuietFiles, directory=str(tmp_path / "keys"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield key, f"http://127.0.0.1:{server.server_address[1]}/jwk"
    server.shutdown()
    server.server_close()


class _QuietFiles(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *_: object) -> None:
        pass


def _assertion(key: ec.EllipticCurvePrivateKey, **claims: object) -> str:
    now = int(time.time())
    body = {"iss": auth.IAP_ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 600}
    body |= {"email": "accounts.google.com:chloe@lab.example", "sub": "accounts.google.com:1"} | claims
    return jwt.encode(body, key, algorithm="ES256", headers={"kid": "test-key"})


def test_iap_assertions_are_verified(iap_key: tuple[ec.EllipticCurvePrivateKey, str]) -> None:
    key, url = iap_key
    other = ec.generate_private_key(ec.SECP256R1())
    verifier = auth.IapVerifier(AUDIENCE, url, reviewers=("chloe@lab.example",))

    user = verifier.verify(_assertion(key))

    assert user == auth.User("chloe@lab.example", frozenset({"user", "reviewer"}))
    for bad in (
        _assertion(key, aud="/projects/1/global/backendServices/2"),
        _assertion(key, iss="https://evil.example"),
        _assertion(key, exp=int(time.time()) - 3600),
        _assertion(other),
        None,
    ):
        with pytest.raises(auth.NotSignedIn):
            verifier.verify(bad)


def test_behind_iap_only_a_signed_assertion_gets_in(
    tmp_path: Path, model_dir: Path, iap_key: tuple[ec.EllipticCurvePrivateKey, str]
) -> None:
    key, url = iap_key
    app = _webapp(tmp_path, model_dir, WEB_AUTH="iap", IAP_AUDIENCE=AUDIENCE, IAP_KEYS_URL=url)
    base = next(app)
    try:
        bare = requests.get(base + "/history", headers={"x-goog-authenticated-user-email": "x"}, timeout=10)
        signed = requests.get(base + "/history", headers={auth.IAP_HEADER: _assertion(key)}, timeout=10)
    finally:
        app.close()

    assert bare.status_code == 401
    assert signed.status_code == 200
