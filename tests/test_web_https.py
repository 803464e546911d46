"""Behind an HTTPS proxy: cookies `Secure`, and forwarded headers believed only from trusted proxies.

A real `bloodcell webapp` over real HTTP, with the headers a TLS-terminating
reverse proxy adds (X-Forwarded-Proto, X-Forwarded-For).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from bloodcell.web.https import secure
from tests.support.stack import webapp_process

FROM_PROXY = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}


@pytest.fixture
def behind_local_proxy(tmp_path: Path, model_dir: Path) -> Iterator[str]:
    """The default: a proxy on this machine (127.0.0.1) is trusted."""
    with webapp_process(tmp_path, model_dir, "127.0.0.1") as (base, _):
        yield base


@pytest.fixture
def trusting_another_proxy(tmp_path: Path, model_dir: Path) -> Iterator[str]:
    with webapp_process(tmp_path, model_dir, "127.0.0.1", WEB_TRUSTED_PROXIES="192.0.2.10") as (base, _):
        yield base


def _cookies(base: str, headers: dict[str, str]) -> list[str]:
    response = requests.get(base + "/healthz", headers=headers, timeout=10)
    response.raise_for_status()
    return [v for k, v in response.raw.headers.items() if k.lower() == "set-cookie"]


def test_cookies_are_secure_when_a_trusted_proxy_says_https(behind_local_proxy: str) -> None:
    # Act
    cookies = _cookies(behind_local_proxy, FROM_PROXY)

    # Assert
    assert cookies and all("; Secure" in c for c in cookies), cookies


def test_cookies_stay_plain_over_plain_http(behind_local_proxy: str) -> None:
    # Act
    cookies = _cookies(behind_local_proxy, {})

    # Assert: the loopback stack on http://127.0.0.1 keeps working
    assert cookies and not any("secure" in c.lower() for c in cookies), cookies


def test_forwarded_headers_from_an_untrusted_address_are_ignored(trusting_another_proxy: str) -> None:
    # Act
    cookies = _cookies(trusting_another_proxy, FROM_PROXY)

    # Assert
    assert cookies and not any("secure" in c.lower() for c in cookies), cookies


def test_secure_is_added_once() -> None:
    # Act
    marked = [secure(b"a=1; path=/; HttpOnly"), secure(b"a=1; path=/; secure")]

    # Assert
    assert marked == [b"a=1; path=/; HttpOnly; Secure", b"a=1; path=/; secure"]
