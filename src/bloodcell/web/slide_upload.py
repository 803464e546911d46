"""Adding images to a slide: the upload widget, "n of N chosen", and files a reload would lose.

Hundreds of files go in at once (a folder dropped on the page): the browser hands
them to Quasar's uploader a few at a time and sends a few at a time, so no single
task grows with the number of files. Names chosen but not yet received live in the
tab's storage; the next visit lists those by name, to be added again.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import Any

from nicegui import events, run, ui

from bloodcell.errors import BloodcellError
from bloodcell.formats import ACCEPTED_SUFFIXES, KINDS, content_type, format_size
from bloodcell.review import actions
from bloodcell.settings import Settings
from bloodcell.slides import ids
from bloodcell.web import batch, results_feed
from bloodcell.web.auth import User

# Hundreds of files chosen or dropped at once reach QUploader ADDED_AT_ONCE at a time, one task
# each (all at once was one task of half a second or more); it then sends them UPLOADS_AT_ONCE at
# a time: it waits for its factory's promise before sending a file, and that promise is a semaphore.
ADDED_AT_ONCE, UPLOADS_AT_ONCE = 20, 4
UPLOAD_SCRIPT = """<script>
window.bcUploadSlots = window.bcUploadSlots || (() => {
  let free = UPLOADS_AT_ONCE;
  const waiting = [];
  return {
    take: () => new Promise(go => { if (free > 0) { free -= 1; go({}); } else waiting.push(go); }),
    free: (count) => {
      for (let i = 0; i < count; i += 1) { const next = waiting.shift(); if (next) next({}); else free += 1; }
    },
  };
})();
window.bcChunkedUploader = (id) => {
  const root = getHtmlElement(id);
  if (!root || root.bcChunked) return;
  root.bcChunked = true;
  const feed = (files) => {
    const next = () => {
      getElement(id).$refs.qRef.addFiles(files.splice(0, ADDED_AT_ONCE));
      if (files.length) setTimeout(next, 0);
    };
    next();
  };
  root.addEventListener('change', (event) => {
    const input = event.target;
    if (!(input instanceof HTMLInputElement) || input.type !== 'file' || !input.files.length) return;
    event.stopImmediatePropagation();
    const files = Array.from(input.files);
    input.value = '';
    feed(files);
  }, true);
  root.addEventListener('drop', (event) => {
    if (!event.dataTransfer || !event.dataTransfer.files.length) return;
    event.preventDefault();
    event.stopImmediatePropagation();
    const overlay = root.querySelector('.q-uploader__dnd');  // QUploader hides it on leave
    if (overlay) overlay.dispatchEvent(new DragEvent('dragleave', {relatedTarget: document.body}));
    feed(Array.from(event.dataTransfer.files));
  }, true);
};
</script>""".replace("UPLOADS_AT_ONCE", str(UPLOADS_AT_ONCE)).replace("ADDED_AT_ONCE", str(ADDED_AT_ONCE))


class SlideUpload:
    """The "Add images" card's content; ``needs_creator`` says whether the slide has no creator yet."""

    def __init__(self, settings: Settings, slide: str, user: User, needs_creator: Callable[[], bool]) -> None:
        self.settings, self.slide, self.user = settings, slide, user
        self.needs_creator = needs_creator
        self._created = False
        ui.label("Add images of this slide").classes("text-subtitle1 font-medium")
        self.upload = ui.upload(
            multiple=True,
            auto_upload=True,
            max_file_size=settings.max_upload_bytes,
            on_upload=self.on_upload,
            label="Cell images",
        ).props(f'accept="{",".join(ACCEPTED_SUFFIXES)}" flat bordered color=primary no-thumbnails')
        self.upload.classes("w-full bc-slide-upload")
        # a few files added and in flight at a time: 300 files chosen at once no longer build
        # 300 entries and requests in one task, and thumbnails keep a connection of their own
        ui.add_head_html(UPLOAD_SCRIPT)
        self.upload.props(':factory="() => window.bcUploadSlots.take()"')
        for done in ("uploaded", "failed"):
            self.upload.on(done, js_handler="(e) => window.bcUploadSlots.free(e.files.length)")
        # no per-file previews: hundreds of them froze the page; the count below says it all
        with self.upload.add_slot("list"), ui.column().classes("w-full items-center gap-0 py-2"):
            ui.icon("cloud_upload", size="32px").classes("text-indigo-3")
            ui.label("Drop this slide's cell images here").classes("text-grey-8 text-center")
        limit = format_size(settings.max_upload_bytes)
        ui.label(f"{KINDS} · up to {limit} each").classes("text-xs text-grey-7")
        self.upload.on("added", self._chosen, js_handler="(files) => emit(files.map(f => f.name))")
        self.upload.on(
            "rejected",
            self._refused_by_browser,
            js_handler="(items) => emit(items.map(i => i.file.name))",
        )
        self.upload_note = ui.label("").classes("text-sm text-grey-8").mark("upload-note")
        self.lost = ui.column().classes("w-full gap-0")
        self.chosen = self.stored = self.not_stored = 0
        # names chosen but not yet received, in the tab's storage: what a reload would lose
        self.store: MutableMapping[str, Any] | None = None
        self.in_flight: list[str] = []
        self._guarded = False

    def connected(self, store: MutableMapping[str, Any]) -> None:
        """Once the browser is there: batch its file input and drops, and report what a reload lost."""
        ui.run_javascript(f"window.bcChunkedUploader({self.upload.id})")
        self.restore(store)

    def restore(self, store: MutableMapping[str, Any]) -> None:
        """List by name the files an earlier page of this tab chose but the server never received."""
        self.store = store
        lost = [str(name) for name in store.pop(self._store_key, [])]
        if not lost:
            return
        with self.lost:
            ui.label(
                f"Not uploaded: the page was reloaded or closed while these {len(lost)} files were "
                "uploading. Add them again:"
            ).classes("text-sm text-negative")
            with ui.column().classes("gap-0 pl-3 max-h-40 overflow-y-auto w-full"):
                for name in lost:
                    ui.label(f"• {name}").classes("text-sm break-all").mark("lost-file")
            ui.button("Dismiss", on_click=self.lost.clear).props("flat dense size=sm")

    @property
    def _store_key(self) -> str:
        return f"slide-upload:{self.slide}"

    def _save_in_flight(self) -> None:
        if self.store is not None:
            self.store[self._store_key] = list(self.in_flight)

    def _chosen(self, event: events.GenericEventArguments) -> None:
        names = [str(name) for name in event.args or []]
        self.chosen += len(names)
        self.in_flight.extend(names)
        self._save_in_flight()
        self._upload_progress()

    def _refused_by_browser(self, event: events.GenericEventArguments) -> None:
        count = len(event.args or [])
        self.chosen += count
        self.not_stored += count
        ui.notify(
            f"{count} files not uploaded: only images up to {format_size(self.settings.max_upload_bytes)}"
        )
        self._upload_progress()

    def _upload_progress(self) -> None:
        done = self.stored + self.not_stored
        text = f"{self.stored} of {self.chosen} chosen stored"
        if self.not_stored:
            text += f" · {self.not_stored} not uploaded"
        in_flight = done < self.chosen
        self.upload_note.set_text(text + (" · uploading, keep this page open" if in_flight else ""))
        if in_flight != self._guarded:  # leaving now would drop the files still in the browser: ask first
            self._guarded = in_flight
            ui.run_javascript(f"window.onbeforeunload = {'() => true' if in_flight else 'null'}")

    async def on_upload(self, event: events.UploadEventArguments) -> None:
        # received: the server stores it (or says why not) even if the page goes away now
        if event.file.name in self.in_flight:
            self.in_flight.remove(event.file.name)
            self._save_in_flight()
        try:
            await self._store(event)
        finally:
            self._upload_progress()

    async def _store(self, event: events.UploadEventArguments) -> None:
        file = event.file
        if reason := batch.refusal(file.name, file.size(), self.settings.max_upload_bytes):
            self.not_stored += 1
            ui.notify(f"{file.name}: not uploaded, {reason}", type="warning")
            return
        name = ids.upload_object_name(self.slide, file.name)
        data = await file.read()
        try:
            await run.io_bound(
                results_feed.store_upload,
                self.settings,
                name,
                data,
                content_type(file.name),
                self.user.name,
            )
        except BloodcellError as exc:
            self.not_stored += 1
            ui.notify(f"{file.name}: could not be stored ({exc})", type="negative")
            return
        self.stored += 1
        if not self._created and self.needs_creator():
            self._created = True  # once, however many files arrive at the same time
            await run.io_bound(
                actions.create_slide,
                results_feed.storage_for(self.settings),
                self.settings,
                self.slide,
                self.user,
            )
        # no redraw per file: the page's timer picks new images up, a few seconds' worth at a time
