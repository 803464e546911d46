"""Cookies marked ``Secure`` on every response to a request that came over HTTPS.

Behind a TLS-terminating proxy the app itself speaks plain HTTP, so whether a
request "came over HTTPS" is the scheme uvicorn's proxy-headers middleware
derives from ``X-Forwarded-Proto``, believed only from ``WEB_TRUSTED_PROXIES``.
Marking per request, rather than always, keeps the loopback stack on
``http://127.0.0.1`` working while a browser on the proxy's ``https://`` address
never sends the session cookie over plain HTTP.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class SecureCookies:
    """Pure ASGI middleware: adds ``; Secure`` to each ``Set-Cookie`` of an ``https`` request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("scheme") != "https":
            await self.app(scope, receive, send)
            return

        async def send_secure(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    (name, secure(value) if name.lower() == b"set-cookie" else value)
                    for name, value in message.get("headers", [])
                ]
            await send(message)

        await self.app(scope, receive, send_secure)


def secure(cookie: bytes) -> bytes:
    attributes = {part.strip().lower() for part in cookie.split(b";")[1:]}
    return cookie if b"secure" in attributes else cookie + b"; Secure"
