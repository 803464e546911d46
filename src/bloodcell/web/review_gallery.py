"""The review gallery: one page of cell crops at a time, a selected cell, and one key per verdict.

Only the visible page exists in the browser (``PER_PAGE`` cards), so a 500-image
slide costs the same as a 40-image one. Each card is one element of plain HTML: a
verdict resends one card's content, and moving the selection changes two cards'
classes. Keys (ignored while typing in a field): one per review category
(``slides.categories``: N L M E B D I T R O C S, X "not a white cell", U "unusable"),
A approves the current label; arrows or J/K move, PageUp/PageDown turn pages,
F jumps to the first cell nobody has reviewed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from html import escape
from typing import Any
from urllib.parse import quote

from nicegui import events, ui

from bloodcell.slides.categories import CATEGORIES, category_words
from bloodcell.slides.cell import Cell, Review
from bloodcell.slides.ids import printable
from bloodcell.slides.order import group_of
from bloodcell.slides.vocabulary import CLASSIFIED, PENDING, REJECTED, STATUS_WORDS, WORDS, label_words
from bloodcell.web import batch
from bloodcell.web.cell_view import picture_url

PER_PAGE = 40
REDRAW_WHILE_FILLING_S = 6.0


def thumb_url(name: str) -> str:
    """Names of dropped files may hold spaces, '#', '?' or quotes: always escaped in a URL."""
    return "/thumb/" + quote(name, safe="/")


VERDICT_KEYS = {c.shortcut: c.key for c in CATEGORIES}
GROUP_WORDS = {**WORDS, REJECTED: STATUS_WORDS[REJECTED], PENDING: STATUS_WORDS[PENDING]}
SELECTED = "ring-4 ring-indigo-400"
# Quasar's own classes for a flat bordered card and a badge, on plain elements
CARD = "q-card q-card--bordered q-card--flat no-shadow flex flex-col p-1 gap-1 w-36 sm:w-44 cursor-pointer"
# cards below the fold are neither laid out nor painted until scrolled to: a page turn lays out a few
CARD_STYLE = "content-visibility: auto; contain-intrinsic-size: auto 13rem"
BADGE = "q-badge flex inline items-center no-wrap q-badge--single-line self-start"

Verdict = Callable[[Cell, str], Awaitable[bool]]  # True once the verdict is stored


def verdict_words(label: str | None) -> str:
    return category_words(label)


def why_uncertain(cell: Cell, min_top: float | None, max_other: float | None) -> str:
    result = cell.result
    if result is None:
        return ""
    return batch.uncertain_reason(result.confidence, result.other_probability, min_top, max_other)


class ReviewGallery:
    def __init__(self, on_verdict: Verdict, rule: tuple[float | None, float | None] = (None, None)) -> None:
        self.on_verdict = on_verdict
        self.rule = rule
        self.cells: list[Cell] = []
        self.reviewed: Mapping[tuple[str, str], Review] = {}
        self.read_only = False
        self.page = 0
        self.selected = 0
        self.cards: dict[int, ui.html] = {}
        # keys are handled one at a time, in the order typed: a quick typist's keys are queued, not lost
        self._keys = asyncio.Lock()
        self._deciding = False  # during a verdict the bar is drawn once, for the next cell
        self._drawn = 0.0  # when the visible page was last drawn
        self.lock_text = "Read-only."  # why, when read_only: set by the page
        with ui.card().classes("w-full gap-2 bc-review-bar sticky top-14 z-10"):
            self.bar = ui.row().classes("w-full items-center gap-3")
        self._build_bar()
        with ui.row().classes("w-full items-center gap-2"):
            self.pager = ui.pagination(1, 1, direction_links=True, on_change=self._paged)
            self.pager.props("boundary-links max-pages=7 dense")
            self.page_label = ui.label("").classes("text-xs text-grey-7").mark("gallery-page")
        self.grid = ui.column().classes("w-full gap-2")
        # the cards' component is loaded with the page: otherwise the first cards to arrive wait
        # for it and are all mounted in one long task when it comes
        ui.html("", sanitize=False).set_visibility(False)
        # buttons keep focus after a click; keys must still work then (no key here activates one)
        ui.keyboard(on_key=self._key, ignore=["input", "select", "textarea"])

    # ---- data ----

    def set_data(
        self, cells: Sequence[Cell], reviewed: Mapping[tuple[str, str], Review], read_only: bool
    ) -> None:
        """New state from the buckets; redraws only what the visible page shows differently.

        While a slide is filling up, most changes are to cells on other pages: then only
        the pager and the count change, not the forty cards.
        """

        def visible(items: Sequence[Cell]) -> list[tuple[tuple[str, str], str]]:
            first = self.page * PER_PAGE
            return [(c.key, c.status) for c in items[first : first + PER_PAGE]]

        same_page = visible(cells) == visible(self.cells)
        now = time.monotonic()
        filling = any(c.status == PENDING for c in cells)
        only_results = reviewed == self.reviewed and read_only == self.read_only
        if (
            not same_page
            and filling
            and only_results
            and now - self._drawn < REDRAW_WHILE_FILLING_S
            and self.cards
        ):
            # results are still arriving and re-sorting the page: redraw it every few seconds, not every poll
            self.page_label.set_text(f"{len(cells)} images, results arriving…")
            return

        changed_keys = {
            k for k in set(reviewed) | set(self.reviewed) if reviewed.get(k) != self.reviewed.get(k)
        }
        mode_changed = read_only != self.read_only
        self.reviewed, self.read_only = reviewed, read_only
        grew = len(cells) != len(self.cells)
        self.cells = list(cells)
        self.selected = min(self.selected, max(0, len(self.cells) - 1))
        if not same_page:
            self.render_page()
            return
        if grew:
            self._pager()
        for index in self.cards:
            if self.cells[index].key in changed_keys:
                self._fill(index)
        if (mode_changed or changed_keys or grew) and not self._deciding:
            self._render_bar()

    @property
    def pages(self) -> int:
        return max(1, -(-len(self.cells) // PER_PAGE))

    # ---- drawing ----

    def _pager(self) -> None:
        self.page = min(self.page, self.pages - 1)
        self.pager.max = self.pages
        self.pager.value = self.page + 1
        self.pager.set_visibility(self.pages > 1)
        first = self.page * PER_PAGE
        shown = len(self.cells[first : first + PER_PAGE])
        self.page_label.set_text(
            f"cells {first + 1}–{first + shown} of {len(self.cells)}" if shown else "No images yet."
        )

    def render_page(self) -> None:
        self._drawn = time.monotonic()
        self._pager()
        first = self.page * PER_PAGE
        shown = self.cells[first : first + PER_PAGE]
        self.grid.clear()
        self.cards = {}
        group = None
        row: ui.element | None = None
        with self.grid:
            for offset, cell in enumerate(shown):
                if group_of(cell) != group:
                    group = group_of(cell)
                    ui.label(GROUP_WORDS.get(group, group)).classes("text-subtitle2 text-grey-8 mt-2")
                    row = ui.element("div").classes("w-full flex flex-wrap gap-2")
                assert row is not None
                with row:
                    index = first + offset
                    # one element per card, its content plain HTML: a page turn builds 40 elements,
                    # not 200 components, and a verdict resends one card's content
                    card = ui.html(self._card_html(index), sanitize=False).classes(CARD).style(CARD_STYLE)
                    card.on("click", lambda _, i=index: self.select(i))
                    card.classes(f"bc-cell-{index}" + (f" {SELECTED}" if index == self.selected else ""))
                    self.cards[index] = card.mark(f"cell-{cell.display}")
        self._render_bar()

    def _fill(self, index: int) -> None:
        self.cards[index].set_content(self._card_html(index))

    def _card_html(self, index: int) -> str:
        """The card's content; every name in it is escaped (dropped files are named by anyone)."""
        cell = self.cells[index]
        review = self.reviewed.get(cell.key)
        parts = [
            f'<img src="{escape(thumb_url(cell.upload_name))}" loading="lazy" alt=""'
            ' class="w-full aspect-square object-cover rounded">',
            '<div class="text-xs text-grey-8 break-all leading-tight">'
            f"{escape(printable(cell.display))}</div>",
        ]
        if cell.status == CLASSIFIED and cell.result is not None:
            confidence = 100 * float(cell.result.confidence or 0.0)
            text = f"{label_words(cell.label)} {confidence:.0f} %"
            colour = "text-amber-10" if cell.result.uncertain else "text-grey-9"
            parts.append(
                f'<div class="text-sm {colour}">{"? " if cell.result.uncertain else ""}{escape(text)}</div>'
            )
        elif cell.status == REJECTED:
            reason = escape(printable(cell.reason or ""))
            parts.append(f'<div class="text-sm text-negative bc-reject-reason">rejected: {reason}</div>')
        else:
            parts.append('<div class="text-sm text-grey-6">waiting…</div>')
        if review is not None:
            parts.append(
                f'<span class="{BADGE} bg-positive text-white">✓ {escape(verdict_words(review.label))}</span>'
            )
        elif cell.status == CLASSIFIED:
            parts.append(f'<span class="{BADGE} bg-grey-5 text-black">to review</span>')
        return "".join(parts)

    def _build_bar(self) -> None:
        """The selected cell's panel, built once: moving on changes texts and the picture, not elements."""
        with self.bar:
            self.bar_empty = ui.label("Add images; they appear here as results arrive.").classes(
                "text-grey-7"
            )
            # the crop the model saw, centred on the cell; a click shows the whole field
            self.bar_image = (
                ui.element("img")
                .props('alt="the cell as the model saw it" title="Click to see the whole field"')
                .classes("w-40 h-40 sm:w-64 sm:h-64 object-cover rounded shrink-0 cursor-zoom-in")
                .mark("cell-crop")
            )
            self.bar_image.on("click", self._zoom)
            with ui.dialog() as self.field_dialog, ui.card().classes("max-w-none bc-field"):
                self.field_title = ui.label("").classes("text-sm font-medium break-all")
                self.field_image = (
                    ui.element("img").props('alt="the whole field"').classes("max-h-[80vh] max-w-[90vw]")
                ).mark("field-image")
                ui.label("The yellow square is the crop the model classified.").classes("text-xs text-grey-7")
            with ui.column().classes("gap-1 grow min-w-0 basis-60") as self.bar_text:
                self.bar_title = (
                    ui.label("").classes("font-medium break-all bc-selected-cell").mark("selected-cell")
                )
                self.bar_model = ui.label("").classes("text-sm").mark("cell-model")
                self.bar_why = ui.label("").classes("text-sm text-amber-10").mark("why-uncertain")
                self.bar_version = ui.label("").classes("text-xs text-grey-6")
                self.bar_review = ui.label("").classes("text-positive text-sm")
                self.bar_locked = ui.label("Signed off: read-only. Reopen the slide to change labels.")
                self.bar_locked.classes("text-sm text-grey-8")
                with ui.row().classes("gap-1") as self.bar_buttons:
                    self.approve = ui.button("Approve (A)", icon="check", on_click=lambda: self.verdict(None))
                    self.approve.props("dense unelevated color=positive").mark("verdict-approve")
                    for key, label in VERDICT_KEYS.items():
                        ui.button(
                            f"{verdict_words(label)} ({key.upper()})",
                            on_click=lambda _, v=label: self.verdict(v),
                        ).props("dense outline no-caps").mark(f"verdict-{label}")
                self.bar_keys = ui.label(
                    "Keys: N L M E B D I T R O · C nucleated red · S smudge · X not a white cell · "
                    "U unusable · A approve · ←/→ move · PgUp/PgDn page · F first unreviewed"
                ).classes("text-xs text-grey-6 max-sm:hidden")

    @staticmethod
    def _show(element: ui.element, text: str | None) -> None:
        if text:
            element.set_text(text)  # type: ignore[attr-defined]
        element.set_visibility(bool(text))

    def _zoom(self) -> None:
        if not self.cells:
            return
        cell = self.cells[self.selected]
        self.field_title.set_text(printable(cell.display))
        self.field_image.props(f'src="{picture_url("field", cell.upload_name)}"')
        self.field_dialog.open()

    def _render_bar(self) -> None:
        has_cells = bool(self.cells)
        self.bar_empty.set_visibility(not has_cells)
        self.bar_image.set_visibility(has_cells)
        self.bar_text.set_visibility(has_cells)
        if not has_cells:
            return
        cell = self.cells[self.selected]
        review = self.reviewed.get(cell.key)
        result = cell.result
        src = picture_url("cell", cell.upload_name)
        if self.bar_image.props.get("src") != src:
            self.bar_image.props(f'src="{src}"')
        self.bar_title.set_text(f"{self.selected + 1} of {len(self.cells)} · {printable(cell.display)}")
        model = why = version = None
        if cell.status == REJECTED and result is not None:
            model = f"Rejected: {result.reason}"
        elif cell.status == CLASSIFIED and result is not None:
            confidence = 100 * float(result.confidence or 0.0)
            model = f"Model: {label_words(cell.label)}, {confidence:.0f} % confidence"
            why = why_uncertain(cell, *self.rule) if result.uncertain else None
            version = f"model {cell.model_words}" if result.model else None
        if cell.status == PENDING:
            model = "Still being processed."
        elif cell.status == REJECTED and result is None:
            model = f"Rejected: {cell.reason}"
        if cell.uploader:  # a folder copied into the bucket has no uploader: nothing to add, nothing wrong
            version = " · ".join(filter(None, [version, f"uploaded by {cell.uploader}"]))
        self._show(self.bar_model, model)
        self.bar_model.classes(
            add="text-negative" if cell.status == REJECTED else "",
            remove="" if cell.status == REJECTED else "text-negative",
        )
        self._show(self.bar_why, why)
        self._show(self.bar_version, version)
        self._show(
            self.bar_review,
            f"Reviewed: {verdict_words(review.label)} by {review.reviewer}" if review else None,
        )
        self.bar_locked.set_text(self.lock_text)
        self.bar_locked.set_visibility(self.read_only)
        can_decide = not self.read_only and cell.status != PENDING
        self.bar_buttons.set_visibility(can_decide)
        self.bar_keys.set_visibility(can_decide)
        self.approve.set_visibility(bool(cell.label))

    # ---- moving and deciding ----

    def select(self, index: int) -> None:
        if not self.cells:
            return
        index = max(0, min(index, len(self.cells) - 1))
        old, self.selected = self.selected, index
        if index // PER_PAGE != self.page:
            self.page = index // PER_PAGE
            self.render_page()
            return
        if old in self.cards:
            self.cards[old].classes(remove=SELECTED)
        if index in self.cards:
            self.cards[index].classes(SELECTED)
        self._render_bar()
        # in the next frame, with the layout the browser makes anyway: not a forced one per key
        ui.run_javascript(
            "requestAnimationFrame(() => document.querySelector"
            f"('.bc-cell-{index}')?.scrollIntoView({{block: 'nearest'}}))"
        )

    def first_unreviewed(self) -> int | None:
        for index, cell in enumerate(self.cells):
            if cell.status == CLASSIFIED and cell.key not in self.reviewed:
                return index
        return None

    async def verdict(self, label: str | None) -> None:
        """``None`` approves the current label; then the selection moves to the next cell to review."""
        if self.read_only or not self.cells:
            return
        cell = self.cells[self.selected]
        review = self.reviewed.get(cell.key)
        label = label or (review.label if review else cell.label)
        if label is None or cell.status == PENDING:
            return
        self._deciding = True
        try:
            stored = await self.on_verdict(cell, label)
        finally:
            self._deciding = False
        after = [i for i in range(self.selected + 1, len(self.cells)) if self.cells[i].status != PENDING]
        if stored and after:
            self.select(after[0])
        else:
            self._render_bar()

    def _paged(self, event: events.ValueChangeEventArguments[Any]) -> None:
        page = int(event.value or 1) - 1
        if page != self.page:
            self.select(page * PER_PAGE)

    async def _key(self, event: events.KeyEventArguments) -> None:
        if not event.action.keydown or event.modifiers.ctrl or event.modifiers.meta or event.modifiers.alt:
            return
        async with self._keys:
            await self._one_key(event)

    async def _one_key(self, event: events.KeyEventArguments) -> None:
        key = event.key
        name = key.name.lower() if len(key.name) == 1 else key.name
        if name in VERDICT_KEYS:
            await self.verdict(VERDICT_KEYS[name])
        elif name == "a":
            await self.verdict(None)
        elif name in ("ArrowRight", "ArrowDown", "j"):
            self.select(self.selected + 1)
        elif name in ("ArrowLeft", "ArrowUp", "k"):
            self.select(self.selected - 1)
        elif name == "PageDown":
            self.select((self.page + 1) * PER_PAGE)
        elif name == "PageUp":
            self.select((self.page - 1) * PER_PAGE)
        elif name == "f" and (index := self.first_unreviewed()) is not None:
            self.select(index)
