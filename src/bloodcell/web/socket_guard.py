"""The websocket behind the pages: every socket.io connection and message checked against the session.

NiceGUI answers a page's clicks over socket.io, which the HTTP middleware never
sees (a WebSocket upgrade is not an HTTP request to it), and it trusts the
``client_id`` each message names. So its socket.io handlers are wrapped here:

* ``connect`` needs a live session in the socket's own cookie (or a valid IAP
  assertion), and the socket is bound to that session;
* ``handshake`` and every message (``event``, ``javascript_response``, ``ack``,
  ``log``) must name a page opened by that same session, and the session must
  still be live: otherwise the message is dropped and the socket told to go to
  the sign-in page, then closed;
* sign-out closes the session's sockets at once, and a sweep every few seconds
  closes those whose session ended otherwise (idle, lifetime, account changed),
  so an open page stops receiving data too.

HTTP routes that name a page's client (uploads) get the same ownership check
from ``owns_path``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import parse_qs

from bloodcell.web import auth

log = logging.getLogger(__name__)
SWEEP_SECONDS = 5.0
_MESSAGES = {"event": True, "javascript_response": False, "ack": False, "log": False}  # name: is activity
_SOCKETS: dict[str, str] = {}  # socket id -> the session it was opened with
_IAP_PREFIX = "iap:"


class _Installed:
    iap: auth.IapVerifier | None = None
    wrapped = False


_STATE = _Installed()


def _page_key(session: Mapping[str, Any]) -> str | None:
    """Which session a page (or request) belongs to, without deciding whether it is still live."""
    if auth.STATE.mode is auth.Mode.IAP:
        user = auth.user_from_session(session)
        return None if user is None else _IAP_PREFIX + user.name
    return auth.session_id(session)


def _live(key: str, touch: bool = False) -> bool:
    if auth.STATE.mode is auth.Mode.IAP:
        return key.startswith(_IAP_PREFIX)
    accounts, sessions = auth.STATE.accounts, auth.STATE.sessions
    if accounts is None or sessions is None:
        return False
    return sessions.resolve(key, accounts.book.current(), touch) is not None


def owns(client_id: object, key: str) -> bool:
    """Whether the page ``client_id`` was opened by the session ``key``."""
    from nicegui import Client

    client = Client.instances.get(client_id) if isinstance(client_id, str) else None
    if client is None:
        return False
    try:
        session = client.request.session
    except (RuntimeError, AssertionError):
        return False
    return _page_key(session) == key


def owns_path(path: str, session: Mapping[str, Any]) -> bool:
    """``/_nicegui/client/<id>/...`` (uploads) only for the session that opened page ``<id>``."""
    if auth.STATE.mode is auth.Mode.LOCAL or not path.startswith("/_nicegui/client/"):
        return True
    key = _page_key(session)
    return key is not None and owns(path.split("/")[3], key)


async def _socket_key(environ: Mapping[str, Any]) -> str | None:
    scope = environ.get("asgi.scope") or {}
    if auth.STATE.mode is auth.Mode.IAP:
        from starlette.concurrency import run_in_threadpool

        assert _STATE.iap is not None
        try:
            user = await run_in_threadpool(_STATE.iap.verify, environ.get("HTTP_X_GOOG_IAP_JWT_ASSERTION"))
        except auth.NotSignedIn:
            return None
        return _IAP_PREFIX + user.name
    session = scope.get("session") or {}
    key = auth.session_id(session)
    return key if key is not None and _live(key, touch=True) else None


async def _end_socket(sid: str, why: str) -> None:
    from nicegui import core

    _SOCKETS.pop(sid, None)
    log.warning("web: websocket closed: %s", why)
    target = "/signin" if auth.STATE.mode is auth.Mode.ACCOUNTS else "/"
    try:
        await core.sio.emit("open", {"path": target, "new_tab": False}, to=sid)
        await core.sio.disconnect(sid)
    except (KeyError, ValueError):  # already gone
        pass


async def end_session(key: str) -> None:
    """Sign-out: close every socket of the session now."""
    for sid, owner in list(_SOCKETS.items()):
        if owner == key:
            await _end_socket(sid, "the session was signed out")


async def sweep() -> None:
    for sid, key in list(_SOCKETS.items()):
        if not _live(key):
            await _end_socket(sid, "the session ended")


def _wrap_connect(original: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def connect(sid: str, environ: dict[str, Any], auth_data: Any = None) -> Any:
        import socketio

        if auth.STATE.mode is auth.Mode.LOCAL:
            return await original(sid, environ, auth_data)
        key = await _socket_key(environ)
        if key is None:
            log.warning("web: websocket refused: no live session")
            raise socketio.exceptions.ConnectionRefusedError("sign-in required")
        client_id = parse_qs(environ.get("QUERY_STRING", "")).get("client_id", [None])[0]
        if client_id is not None and not owns(client_id, key):
            log.warning("web: websocket refused: the page belongs to another session")
            raise socketio.exceptions.ConnectionRefusedError("not this session's page")
        _SOCKETS[sid] = key
        try:
            return await original(sid, environ, auth_data)
        except BaseException:
            _SOCKETS.pop(sid, None)
            raise

    return connect


def _wrap_handshake(original: Callable[..., Awaitable[bool]]) -> Callable[..., Awaitable[bool]]:
    async def handshake(sid: str, data: Any) -> bool:
        if auth.STATE.mode is auth.Mode.LOCAL:
            return await original(sid, data)
        key = _SOCKETS.get(sid)
        page = data.get("client_id") if isinstance(data, dict) else None
        if key is None or not owns(page, key) or not _live(key):
            log.warning("web: websocket handshake refused: not a live page of this session")
            return False
        return await original(sid, data)

    return handshake


def _wrap_message(name: str, original: Callable[..., Any], activity: bool) -> Callable[..., Awaitable[Any]]:
    async def message(sid: str, msg: Any) -> Any:
        if auth.STATE.mode is auth.Mode.LOCAL:
            return original(sid, msg)
        key = _SOCKETS.get(sid)
        if key is None or not _live(key, touch=activity):
            await _end_socket(sid, f"{name} message after the session ended")
            return None
        if not isinstance(msg, dict) or not owns(msg.get("client_id"), key):
            await _end_socket(sid, f"{name} message for a page of another session")
            return None
        return original(sid, msg)

    return message


def _wrap_disconnect(original: Callable[..., Any]) -> Callable[..., Any]:
    def disconnect(sid: str, reason: Any = None) -> Any:
        _SOCKETS.pop(sid, None)
        return original(sid)

    return disconnect


def install(iap: auth.IapVerifier | None) -> None:
    """Wrap NiceGUI's socket.io handlers once per process (they are module-level, registered at import)."""
    from nicegui import app, core

    _STATE.iap = iap
    if _STATE.wrapped:
        return
    handlers = core.sio.handlers["/"]
    core.sio.on("connect", _wrap_connect(handlers["connect"]))
    core.sio.on("handshake", _wrap_handshake(handlers["handshake"]))
    for name, activity in _MESSAGES.items():
        core.sio.on(name, _wrap_message(name, handlers[name], activity))
    core.sio.on("disconnect", _wrap_disconnect(handlers["disconnect"]))
    _STATE.wrapped = True
    # already started (a test harness): the per-message checks still hold
    with contextlib.suppress(RuntimeError):
        app.on_startup(lambda: app.timer(SWEEP_SECONDS, sweep))
