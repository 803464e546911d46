"""Sign-in enforcement: without a session, nothing but the sign-in page is served.

One middleware guards every route, NiceGUI's and ours (pages, ``/thumb``, uploads
to ``/_nicegui/client/...``, pages other modules add later), so no page has to
remember to check. Only the sign-in form, ``/healthz`` and NiceGUI's versioned
static assets are public. The session is Starlette's cookie, signed with
``STORAGE_SECRET``; on a loopback-only app the middleware lets everything through.
"""

from __future__ import annotations

import html
import logging
from urllib.parse import parse_qs, quote

from fastapi import Request, Response
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse
from nicegui import __version__ as nicegui_version
from nicegui import app
from starlette.concurrency import run_in_threadpool
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

from bloodcell.settings import Settings
from bloodcell.web import auth

log = logging.getLogger(__name__)
SIGNIN = "/signin"
_PUBLIC = (SIGNIN, "/signout", "/healthz", "/favicon.ico")
_PUBLIC_PREFIXES = (f"/_nicegui/{nicegui_version}/",)
_MAX_FORM_BYTES = 4096


class _Guard:
    accounts: auth.Accounts | None = None
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
            return await call_next(request)
        if auth.user_from_session(request.session) is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"{SIGNIN}?next={quote(target, safe='')}", status_code=303)
        return await call_next(request)


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
<label>Name <input id="name" name="name" autocomplete="username" required></label>
<label>Password <input id="password" name="password" type="password" autocomplete="current-password" required>
</label>
<button id="signin" type="submit">Sign in</button>
</form></body></html>"""


def _form(next_path: str, message: str = "", status: int = 200) -> HTMLResponse:
    shown = f'<p class="error" id="error">{html.escape(message)}</p>' if message else ""
    body = _FORM.format(message=shown, next=html.escape(_safe_next(next_path), quote=True))
    return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


async def _read_form(request: Request) -> dict[str, str]:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_FORM_BYTES:
            break
    fields = parse_qs(body[:_MAX_FORM_BYTES].decode("utf-8", "replace"), max_num_fields=8)
    return {key: values[0] for key, values in fields.items() if values}


def _add_routes() -> None:
    @app.get(SIGNIN, include_in_schema=False)
    def signin_page(next: str = "/") -> Response:
        if auth.STATE.mode is not auth.Mode.ACCOUNTS:
            return RedirectResponse(_safe_next(next), status_code=303)
        return _form(next)

    @app.post(SIGNIN, include_in_schema=False)
    async def signin_submit(request: Request) -> Response:
        if auth.STATE.mode is not auth.Mode.ACCOUNTS or GUARD.accounts is None:
            return RedirectResponse("/", status_code=303)
        form = await _read_form(request)
        name, password = form.get("name", "").strip(), form.get("password", "")
        next_path = _safe_next(form.get("next"))
        client = request.client.host if request.client else "-"
        try:
            user = await run_in_threadpool(GUARD.accounts.check, name, password, client)
        except auth.TooManyAttempts as exc:
            log.warning("web: sign-in rate-limited for %r from %s", name, client)
            response = _form(next_path, str(exc), status=429)
            response.headers["Retry-After"] = f"{exc.retry_after:.0f}"
            return response
        if user is None:
            log.warning("web: failed sign-in for %r from %s", name, client)
            return _form(next_path, "wrong name or password", status=401)
        request.session[auth.SESSION_KEY] = auth.session_value(user)
        log.info("web: %r signed in from %s", user.name, client)
        return RedirectResponse(next_path, status_code=303)

    @app.get("/signout", include_in_schema=False)
    def signout(request: Request) -> Response:
        request.session.pop(auth.SESSION_KEY, None)
        return RedirectResponse(SIGNIN if auth.STATE.mode is auth.Mode.ACCOUNTS else "/", status_code=303)


def install(settings: Settings) -> auth.Mode:
    """Decide the sign-in mode from where the app listens, and fail fast on what it needs."""
    mode, accounts = auth.check_config(settings)
    if mode is auth.Mode.ACCOUNTS:
        GUARD.accounts = auth.Accounts(accounts)
    if mode is auth.Mode.IAP:
        GUARD.iap = auth.IapVerifier(settings.iap_audience, settings.iap_keys_url, settings.iap_reviewers)
    auth.STATE.mode = mode
    if not GUARD.installed:  # one middleware per process; the routes are re-registered with the pages
        app.add_middleware(SignInMiddleware)
        GUARD.installed = True
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
