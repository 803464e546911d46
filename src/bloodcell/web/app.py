"""The web app's shell: shared layout, routes for thumbnails and model files, and ``main()``.

Pages and routes are registered by ``build()`` rather than at import time, so the
NiceGUI test harness (which resets its routes between tests) and ``bloodcell
webapp`` both get a fresh, fully configured app from the same code.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import Request, Response
from fastapi.responses import FileResponse, PlainTextResponse
from nicegui import app, run, ui
from starlette.middleware.sessions import SessionMiddleware

from bloodcell.settings import Settings, get_settings
from bloodcell.web import pages, results_feed, signin
from bloodcell.web.https import SecureCookies

log = logging.getLogger(__name__)

DISCLAIMER = "Research tool, not a diagnosis: results must not be used for clinical decisions."


@contextmanager
def frame(current: str) -> Iterator[None]:
    """Header with navigation and the disclaimer on every page, content in a centred column."""
    ui.colors(primary="#3949ab")
    ui.query("body").style("background-color: #f5f6fa")
    # wraps rather than scrolls sideways: at phone width (390 px) the links go under the name
    with ui.header().classes(
        "items-center bg-white text-grey-9 shadow-1 px-3 sm:px-6 py-2 flex-wrap gap-y-1"
    ):
        ui.icon("biotech", size="28px").classes("text-primary")
        ui.label("bloodcell").classes("text-h6 font-medium")
        ui.label("white-blood-cell classifier").classes("text-grey-7 max-sm:hidden")
        ui.space()
        for title, path in pages.menu():
            link = ui.link(title, path).classes("px-2 sm:px-3 py-1 rounded no-underline text-grey-9")
            if path == current:
                link.classes("bg-indigo-1 text-primary font-medium").props('aria-current="page"')
                link.mark("nav-current")
        if (name := signin.signed_in_name()) is not None:
            ui.label(name).classes("pl-4 text-grey-7").props("id=signed-in-user")
            # a POST with the session's CSRF token: a link (GET) could be fired by any other site
            ui.html(signin.signout_form(), sanitize=False).classes("text-grey-9")
    with ui.column().classes("w-full max-w-screen-xl mx-auto p-2 sm:p-4 gap-4"):
        with ui.row().classes("w-full items-center gap-2 px-4 py-2 rounded bg-amber-1 text-amber-10"):
            ui.icon("warning_amber")
            ui.label(DISCLAIMER).classes("font-medium")
        yield


def build(settings: Settings) -> None:
    """Register every page and route of the app, behind sign-in unless it listens on loopback."""
    signin.install(settings)
    # importing declares their pages; the menu follows this order
    # isort: off
    from bloodcell.web import batch_page, slides_page, slide_page, history_page, model_page  # noqa: F401
    from bloodcell.web import calibration_page  # noqa: F401

    # isort: on
    from bloodcell.web import cell_view
    from bloodcell.web.report_routes import register as register_reports

    pages.install(settings, frame)
    register_reports(settings)  # /slides/{slide}/report.pdf|.fhir.json|.csv|.summary.csv
    cell_view.register(settings)  # /cell/<upload> (the crop the model saw), /field/<upload> (the whole field)

    @app.get("/thumb/{name:path}", include_in_schema=False)
    async def thumb(name: str, request: Request) -> Response:
        found = await run.io_bound(results_feed.thumbnail, settings, name)
        if found is None or found.data is None:
            return Response(results_feed.PLACEHOLDER_SVG, media_type="image/svg+xml")
        # a thumbnail never changes for one upload version: the browser revalidates by ETag
        headers = {"Cache-Control": "private, max-age=300", "ETag": f'"{found.generation}"'}
        if request.headers.get("if-none-match") == headers["ETag"]:
            return Response(status_code=304, headers=headers)
        return Response(found.data, media_type="image/jpeg", headers=headers)

    @app.get("/model-files/{name}", include_in_schema=False)
    def model_picture(name: str) -> Response:
        """Pictures of the model folder (the confusion matrix, the model card's figures), nothing else."""
        folder = model_page.model_folder(settings)
        match = model_page.MODEL_PICTURE.fullmatch(name)
        path = folder / name if folder and match else None
        if path is None or not path.is_file():
            return Response(status_code=404)
        kind = match.group(1).lower() if match else "png"
        return FileResponse(
            path, media_type={"jpg": "image/jpeg", "svg": "image/svg+xml"}.get(kind, f"image/{kind}")
        )


def storage_secret(settings: Settings) -> str:
    if settings.storage_secret:
        return settings.storage_secret
    log.warning("STORAGE_SECRET is not set: using a random one, so browser storage won't survive a restart")
    return secrets.token_urlsafe(32)


def add_health_route(token: str) -> None:
    """``/healthz`` answers this start's token: ``serve`` knows its own app from another on the port."""

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> PlainTextResponse:
        return PlainTextResponse(token)


def main(settings: Settings | None = None, health_token: str = "") -> None:
    """Run the app on ``HOST``:``PORT``, configured like the functions."""
    settings = settings or get_settings()
    build(settings)
    add_health_route(health_token or "ok")
    if settings.metrics_port:  # beside the app, not behind its sign-in: Prometheus cannot sign in
        from bloodcell.metrics import serve_metrics

        serve_metrics(settings.metrics_port, settings.host)
    secret = storage_secret(settings)
    # The session middleware NiceGUI would add in ui.run, added here so that
    # SecureCookies wraps it (the last added is outermost) and sees its cookie.
    app.add_middleware(SessionMiddleware, secret_key=secret)
    app.add_middleware(SecureCookies)
    ui.run(
        host=settings.host,
        port=settings.port,
        title="bloodcell",
        favicon="🔬",
        storage_secret=secret,  # the middleware exists: NiceGUI only records the secret
        reload=False,
        show=False,
        show_welcome_message=False,
        # the client's address and scheme from X-Forwarded-* only when a trusted proxy sent them
        proxy_headers=True,
        forwarded_allow_ips=",".join(settings.web_trusted_proxies),
    )
