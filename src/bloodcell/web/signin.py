"""Sign-in enforcement: without a session, nothing but the sign-in page is served.

One middleware guards every route, NiceGUI's and ours (pages, ``/thumb``, uploads
to ``/_nicegui/client/...``, pages other modules add later), so no page has to
remember to check. Only the sign-in form, ``/healthz`` and NiceGUI's versioned
static assets are public. Starlette's cookie (signed with ``STORAGE_SECRET``)
holds only a server-side session id (``web.sessions``) and the forms' CSRF token;
password checks go through ``web.limiter`` (counted first, bounded hashes); the
websocket is guarded by ``web.socket_guard``. On a loopback-only app the
middleware lets everything through.
"""

from __future__ import annotations

import html
import logging
import secrets
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from fastapi import Request, Response
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse
from nicegui import __version__ as nicegui_version
from nicegui import app
from starlette.concurrency import run_in_threadpool
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

from bloodcell.settings import Settings
from bloodcell.web import auth, socket_guard
from bloodcell.web.accounts import AccountBook
from bloodcell.web.limiter import Busy, HashGate, TooManyAttempts
from bloodcell.web.sessions import DEVICE_COOKIE, DEVICE_DAYS, DeviceCookies, SessionStore

log = logging.getLogger(__name__)
SIGNIN = "/signin"
SIGNOUT = "/signout"
CSRF_KEY = "bloodcell-csrf"
_PUBLIC = (SIGNIN, SIGNOUT, "/healthz", "/favicon.ico")
_PUBLIC_PREFIXES = (f"/_nicegui/{nicegui_version}/",)
_MAX_FORM_BYTES = 4096


class _Guard:
    gate: HashGate | None = None
    devices: DeviceCookies | None = None
    iap: auth.IapVerifier | None = None
    installed = False


GUARD = _Guard()


def _public(path: str) -> bool:
    if path in _PUBLIC:
        return True
    return path.startswith(_PUBLIC_PREFIXES) and "/dynamic_resources/" not in path


def _safe_next(target: str | None) -> str:
    """Only a path on this site: never ``//evil.example`` or ``https://...``."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


class SignInMiddleware(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        mode = auth.STATE.mode
        if mode is auth.Mode.LOCAL or _public(request.url.path):
            return await call_next(request)
        if mode is auth.Mode.IAP:
            assert GUARD.iap is not None
            try:
                user = await run_in_threadpool(GUARD.iap.verify, request.headers.get(auth.IAP_HEADER))
            except auth.NotSignedIn as exc:
                log.warning("web: refused %s: %s", request.url.path, exc)
                return PlainTextResponse("sign-in through Identity-Aware Proxy required", status_code=401)
            request.session[auth.SESSION_KEY] = auth.session_value(user)
        elif auth.session_user(request.session, touch=True) is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"{SIGNIN}?next={quote(target, safe='')}", status_code=303)
        if not socket_guard.owns_path(request.url.path, request.session):
            log.warning("web: refused %s: the page belongs to another session", request.url.path)
            return PlainTextResponse("this page belongs to another session", status_code=403)
        return await call_next(request)


# ---- CSRF: a token kept in the signed session cookie and repeated in each form ----


def csrf_token(session: dict[str, Any]) -> str:
    token = session.get(CSRF_KEY)
    if not isinstance(token, str):
        token = session[CSRF_KEY] = secrets.token_urlsafe(24)
    return token


def _csrf_ok(request: Request, form: dict[str, str]) -> bool:
    """The form's token matches the cookie's, and a browser that says where it posts from says here.

    A cross-site form post carries no session cookie (SameSite=Lax), hence no token.
    """
    expected = request.session.get(CSRF_KEY)
    given = form.get("csrf", "")
    if not isinstance(expected, str) or not secrets.compare_digest(expected.encode(), given.encode()):
        return False
    origin = request.headers.get("origin")
    return origin is None or urlsplit(origin).netloc == request.headers.get("host", "")


def signout_form() -> str:
    """The header's sign-out button: a POST with the session's CSRF token, never a link."""
    from nicegui import context

    token = csrf_token(context.client.request.session)
    return (
        f'<form method="post" action="{SIGNOUT}" style="margin:0">'
        f'<input type="hidden" name="csrf" value="{html.escape(token, quote=True)}">'
        '<button id="signout" type="submit" style="background:none;border:0;cursor:pointer;'
        'font:inherit;color:inherit;padding:.25rem .75rem">Sign out</button></form>'
    )


_FORM = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>bloodcell: sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font-family: sans-serif; background: #f5f6fa; display: flex; justify-content: center; }}
form {{ background: white; margin-top: 10vh; padding: 2em; border-radius: 8px; min-width: 18em;
  box-shadow: 0 1px 4px #0002; display: flex; flex-direction: column; gap: .8em; }}
input, button {{ font-size: 1em; padding: .5em; }} button {{ background: #3949ab; color: white; border: 0; }}
.error {{ color: #b71c1c; }}
</style></head><body>
<form method="post" action="/signin">
<h2>bloodcell</h2>
<p>Research tool, not a diagnosis. Sign in to continue.</p>
{message}
<input type="hidden" name="next" value="{next}">
<input type="hidden" name="csrf" value="{csrf}">
<label>Name <input id="name" name="name" autocomplete="username" required></label>
<label>Password <input id="password" name="password" type="password" autocomplete="current-password" required>
</label>
<button id="signin" type="submit">Sign in</button>
</form></body></html>"""


def _form(request: Request, next_path: str, message: str = "", status: int = 200) -> HTMLResponse:
    shown = f'<p class="error" id="error">{html.escape(message)}</p>' if message else ""
    body = _FORM.format(
        message=shown,
        next=html.escape(_safe_next(next_path), quote=True),
        csrf=html.escape(csrf_token(request.session), quote=True),
    )
    return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


def _refusal(request: Request, next_path: str, exc: TooManyAttempts | Busy) -> HTMLResponse:
    response = _form(request, next_path, str(exc), status=429)
    response.headers["Retry-After"] = f"{exc.retry_after:.0f}"
    return response


async def _read_form(request: Request) -> dict[str, str]:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_FORM_BYTES:
            break
    fields = parse_qs(body[:_MAX_FORM_BYTES].decode("utf-8", "replace"), max_num_fields=8)
    return {key: values[0] for key, values in fields.items() if values}


async def _check_password(
    request: Request, name: str, password: str, client: str
) -> auth.Account | TooManyAttempts | Busy | None:
    """Counted first (atomically), then at most ``WEB_SIGNIN_HASHES`` hashes at once."""
    accounts, gate, devices = auth.STATE.accounts, GUARD.gate, GUARD.devices
    assert accounts is not None and gate is not None and devices is not None
    device = devices.device_for(request.cookies.get(DEVICE_COOKIE), name)
    try:
        charge = accounts.begin(name, client, device)
    except TooManyAttempts as exc:
        return exc
    try:
        async with gate.slot(known_device=device is not None):
            return await run_in_threadpool(accounts.finish, charge, name, password)
    except Busy as exc:
        accounts.cancel(charge)
        return exc


def _add_routes() -> None:
    @app.get(SIGNIN, include_in_schema=False)
    def signin_page(request: Request, next: str = "/") -> Response:
        if auth.STATE.mode is not auth.Mode.ACCOUNTS:
            return RedirectResponse(_safe_next(next), status_code=303)
        return _form(request, next)

    @app.post(SIGNIN, include_in_schema=False)
    async def signin_submit(request: Request) -> Response:
        if auth.STATE.mode is not auth.Mode.ACCOUNTS or auth.STATE.sessions is None:
            return RedirectResponse("/", status_code=303)
        form = await _read_form(request)
        name, password = form.get("name", "").strip(), form.get("password", "")
        next_path = _safe_next(form.get("next"))
        client = request.client.host if request.client else "-"
        if not _csrf_ok(request, form):
            log.warning("web: sign-in form without its CSRF token from %s", client)
            request.session.pop(CSRF_KEY, None)
            return _form(request, next_path, "the sign-in form had expired: please try again", status=403)
        outcome = await _check_password(request, name, password, client)
        if isinstance(outcome, TooManyAttempts | Busy):
            log.warning("web: sign-in refused for %r from %s: %s", name, client, outcome)
            return _refusal(request, next_path, outcome)
        if outcome is None:
            log.warning("web: failed sign-in for %r from %s", name, client)
            return _form(request, next_path, "wrong name or password", status=401)
        auth.STATE.sessions.end(auth.session_id(request.session))
        request.session[auth.SESSION_KEY] = {"sid": auth.STATE.sessions.open(outcome)}
        request.session[CSRF_KEY] = secrets.token_urlsafe(24)
        log.info("web: %r signed in from %s", outcome.name, client)
        response = RedirectResponse(next_path, status_code=303)
        assert GUARD.devices is not None
        response.set_cookie(
            DEVICE_COOKIE,
            GUARD.devices.remember(request.cookies.get(DEVICE_COOKIE), outcome.name),
            max_age=DEVICE_DAYS * 86400,
            httponly=True,
            samesite="lax",
        )
        return response

    @app.post(SIGNOUT, include_in_schema=False)
    async def signout(request: Request) -> Response:
        form = await _read_form(request)
        if auth.STATE.mode is auth.Mode.ACCOUNTS and not _csrf_ok(request, form):
            return PlainTextResponse("sign-out needs the page's form (CSRF token missing)", status_code=403)
        sid = auth.session_id(request.session)
        if auth.STATE.sessions is not None and sid is not None:
            auth.STATE.sessions.end(sid)
            await socket_guard.end_session(sid)
        request.session.pop(auth.SESSION_KEY, None)
        request.session[CSRF_KEY] = secrets.token_urlsafe(24)
        return RedirectResponse(SIGNIN if auth.STATE.mode is auth.Mode.ACCOUNTS else "/", status_code=303)


def install(settings: Settings) -> auth.Mode:
    """Decide the sign-in mode from where the app listens, and fail fast on what it needs."""
    mode, _ = auth.check_config(settings)
    if mode is auth.Mode.ACCOUNTS:
        book = AccountBook(settings.web_accounts, settings.web_accounts_file)
        auth.STATE.accounts = auth.Accounts(book)
        auth.STATE.sessions = SessionStore(
            settings.web_session_idle_minutes * 60, settings.web_session_max_hours * 3600
        )
        GUARD.gate = HashGate(settings.web_signin_hashes, reserved=1)
        GUARD.devices = DeviceCookies(settings.storage_secret)
    if mode is auth.Mode.IAP:
        GUARD.iap = auth.IapVerifier(settings.iap_audience, settings.iap_keys_url, settings.iap_reviewers)
    auth.STATE.mode = mode
    if not GUARD.installed:  # one middleware per process; the routes are re-registered with the pages
        app.add_middleware(SignInMiddleware)
        GUARD.installed = True
    socket_guard.install(GUARD.iap)
    _add_routes()
    log.info("web: sign-in mode %s (listening on %s)", mode.value, settings.host)
    return mode


def signed_in_name() -> str | None:
    """For the header: who is signed in, or None on a loopback stack."""
    if auth.STATE.mode is auth.Mode.LOCAL:
        return None
    try:
        return auth.current_user().name
    except auth.NotSignedIn:
        return None
