"""The page registry: each page states its path, title and menu entry once, beside its code.

``@page("/history", "History", nav="History")`` on a page function is all a new
page needs; ``install()`` registers every page with NiceGUI inside the shared
frame. Registration happens per app build (the NiceGUI test harness resets its
routes between tests), declaration once per process at import.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from nicegui import ui

from bloodcell.settings import Settings

Render = Callable[..., Awaitable[None] | None]


@dataclass(frozen=True)
class Page:
    path: str
    title: str
    nav: str | None
    render: Render
    under: str | None = None  # the menu entry to highlight, for a page without one of its own

    @property
    def section(self) -> str:
        return self.under or self.path


PAGES: dict[str, Page] = {}


def page(
    path: str, title: str, nav: str | None = None, under: str | None = None
) -> Callable[[Render], Render]:
    """Declare a page; its function takes the settings first, then its path and query parameters.

    ``under`` names the menu entry's path a page belongs to (``/slides`` for one slide).
    """

    def declare(render: Render) -> Render:
        PAGES[path] = Page(path, title, nav, render, under)
        return render

    return declare


def menu() -> Iterator[tuple[str, str]]:
    """(label, path) of every page that has a menu entry, in declaration order."""
    return ((p.nav, p.path) for p in PAGES.values() if p.nav)


def install(settings: Settings, frame: Callable[[str], AbstractContextManager[None]]) -> None:
    for spec in PAGES.values():
        ui.page(spec.path, title=f"bloodcell: {spec.title}")(_handler(spec, settings, frame))


def _handler(
    spec: Page, settings: Settings, frame: Callable[[str], AbstractContextManager[None]]
) -> Callable[..., Awaitable[None]]:
    async def handler(**params: Any) -> None:
        with frame(spec.section):
            outcome = spec.render(settings, **params)
            if inspect.isawaitable(outcome):
                await outcome

    # NiceGUI reads a page's parameters (path and query) from its signature: the page's own, less settings
    own = inspect.signature(spec.render)
    handler.__signature__ = own.replace(parameters=list(own.parameters.values())[1:])  # type: ignore[attr-defined]
    return handler
