"""Signing in to a real web app over HTTP, the way a browser does: form, CSRF token, cookies."""

from __future__ import annotations

import re

import requests

_TOKEN = re.compile(r'name="csrf" value="([^"]+)"')


def csrf(browser: requests.Session, base: str) -> str:
    """The CSRF token of the sign-in form (it also puts the session cookie in the browser)."""
    page = browser.get(base + "/signin", timeout=30)
    match = _TOKEN.search(page.text)
    assert match, page.text[:500]
    return match.group(1)


def page_token(html: str) -> str:
    """The sign-out form's token on a signed-in page."""
    match = _TOKEN.search(html.replace("&quot;", '"').replace('\\"', '"'))
    assert match, "no sign-out form on the page"
    return match.group(1)


def sign_in(
    browser: requests.Session,
    base: str,
    name: str,
    password: str,
    next_path: str = "/",
    headers: dict[str, str] | None = None,
) -> requests.Response:
    data = {"name": name, "password": password, "next": next_path, "csrf": csrf(browser, base)}
    return browser.post(base + "/signin", data=data, headers=headers, allow_redirects=False, timeout=60)
