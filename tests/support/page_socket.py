"""A page's websocket, spoken with the real python-socketio client as NiceGUI's browser code does.

``open_page`` loads a page over HTTP and reads its client id and elements;
``PageSocket`` connects to ``/_nicegui_ws/socket.io`` with that client id (the
implicit handshake the browser uses), sends element events and records what
the server sends back.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import requests
import socketio

_CLIENT_ID = re.compile(r"client_id': '([0-9a-f-]{36})'")
_ELEMENTS = re.compile(r"parseElements\(String\.raw`(.*?)`\)", re.S)


@dataclass(frozen=True)
class Page:
    client_id: str
    elements: dict[str, Any]

    def element(self, tag: str, label: str | None = None) -> str:
        """The id of the first element with this tag (and label)."""
        for key, element in self.elements.items():
            if element.get("tag") == tag and (label is None or element["props"].get("label") == label):
                return key
        raise AssertionError(f"no {tag} {label or ''} on the page")

    def listener(self, element_id: str, kind: str) -> str:
        for event in self.elements[element_id]["events"]:
            if event["type"] == kind:
                return str(event["listener_id"])
        raise AssertionError(f"element {element_id} has no {kind} listener")


def open_page(browser: requests.Session, base: str, path: str) -> Page:
    response = browser.get(base + path, allow_redirects=False, timeout=30)
    assert response.status_code == 200, response.status_code
    client = _CLIENT_ID.search(response.text)
    elements = _ELEMENTS.search(response.text)
    assert client and elements
    return Page(client.group(1), json.loads(elements.group(1)))


class PageSocket:
    def __init__(
        self, base: str, cookies: Mapping[str, str | None] | None, client_id: str, implicit: bool = True
    ) -> None:
        self.client_id = client_id
        self.received: list[tuple[str, Any]] = []
        self.closed = threading.Event()
        self.sio = socketio.Client(reconnection=False)
        self.sio.on("*", lambda event, *args: self.received.append((event, args[0] if args else None)))
        self.sio.on("disconnect", lambda *_: self.closed.set())
        query = {"client_id": client_id, "tab_id": str(uuid.uuid4()), "document_id": str(uuid.uuid4())}
        if implicit:
            query["implicit_handshake"] = "true"
        jar = "; ".join(f"{k}={v}" for k, v in (cookies or {}).items() if v is not None)
        headers = {"Cookie": jar} if jar else {}
        self.sio.connect(
            f"{base}?{urlencode(query)}",
            headers=headers,
            transports=["websocket"],
            socketio_path="/_nicegui_ws/socket.io",
            wait_timeout=30,
        )

    def handshake(self, client_id: str) -> Any:
        data = {"client_id": client_id, "tab_id": str(uuid.uuid4()), "document_id": str(uuid.uuid4())}
        return self.sio.call("handshake", data, timeout=30)

    def send(self, page: Page, element_id: str, kind: str, *args: Any, client_id: str | None = None) -> None:
        self.sio.emit(
            "event",
            {
                "id": int(element_id),
                "client_id": client_id or page.client_id,
                "listener_id": page.listener(element_id, kind),
                "args": [json.dumps(arg) for arg in args],
            },
        )

    def close(self) -> None:
        self.sio.disconnect()
