"""Download routes for slide reports: ``/slides/{slide}/report.pdf`` (and .fhir.json, .csv, .summary.csv).

Plain FastAPI routes so a page button, a script or a LIS can fetch the same files the
``bloodcell report`` command writes. The work is blocking (bucket reads, PDF layout),
so it runs through ``run.io_bound``, never on the event loop.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from fastapi import Response
from nicegui import app, run

from bloodcell.errors import RejectedInput
from bloodcell.reports.kinds import FORMATS
from bloodcell.settings import Settings
from bloodcell.slides.ids import sanitise_name
from bloodcell.web import auth, results_feed

log = logging.getLogger(__name__)


def report_url(slide: str, kind: str) -> str:
    """The download address of one slide's report, for buttons on other pages."""
    return f"/slides/{quote(slide, safe='')}/report{FORMATS[kind].suffix}"


def _disposition(slide: str, suffix: str) -> str:
    name = f"bloodcell-{slide}{suffix}"
    return f"attachment; filename=\"{sanitise_name(name, 120)}\"; filename*=UTF-8''{quote(name, safe='')}"


def _route(settings: Settings, kind: str) -> Callable[..., Awaitable[Response]]:
    suffix, media_type = FORMATS[kind].suffix, FORMATS[kind].media_type

    async def download(slide: str, wbc: float | None = None) -> Response:
        if not auth.current_user().has(auth.USER):
            return Response("sign in to download reports", status_code=403, media_type="text/plain")
        try:  # the `reports` extra (scipy, reportlab) may be absent from a slim web install
            from bloodcell.reports.render import report_bytes
            from bloodcell.slides.loader import SlideNotFound
        except ModuleNotFoundError as exc:
            log.error(
                "report %s asked for, but %r is not installed: pip install 'bloodcell[reports]'",
                kind,
                exc.name,
            )
            return Response(
                "reports are not installed on this server", status_code=503, media_type="text/plain"
            )
        storage = results_feed.storage_for(settings)
        try:
            data = await run.io_bound(report_bytes, storage, settings, slide, kind, wbc)
        except SlideNotFound as exc:
            return Response(exc.reason, status_code=404, media_type="text/plain")
        except RejectedInput as exc:
            return Response(exc.reason, status_code=400, media_type="text/plain")
        if data is None:  # the app is shutting down
            return Response("shutting down, try again", status_code=503, media_type="text/plain")
        log.info("report %s of slide %r: %d bytes", kind, slide, len(data))
        headers = {"Content-Disposition": _disposition(slide, suffix), "Cache-Control": "no-store"}
        return Response(data, media_type=media_type, headers=headers)

    return download


def register(settings: Settings) -> None:
    """Add the routes; called once from ``web.app.build``."""
    for kind, fmt in FORMATS.items():
        path = f"/slides/{{slide}}/report{fmt.suffix}"
        app.add_api_route(path, _route(settings, kind), methods=["GET"], include_in_schema=False)
