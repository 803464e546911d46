"""Person-verified archive folders as extra training data (``train.py --archive DIR``).

The predict function archives every classified upload as ``<date>/<LABEL>/<generation>/<name>``
with its result JSON beside it (``<name>.json``). ``<LABEL>`` there is the *model's* answer,
so it is never used as a label. The review workflow writes ``<name>.verified.json`` beside
them once a person has checked the cell: ``{"label": ..., "reviewer": ..., "verified_at": ...}``.
Only entries with all three files and a verified label naming one of the outputs are taken;
the verified label wins over the folder's. Anything else is skipped and counted, never guessed.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from splits import IMAGE_SUFFIXES, OUTPUTS, Item

VERIFIED_SUFFIX = ".verified.json"
SOURCE = "archive"


@dataclass(frozen=True)
class Verified:
    """One person's verdict on an archived cell."""

    label: str
    reviewer: str
    verified_at: str

    @classmethod
    def from_json(cls, doc: object) -> Verified:
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
        values = {k: doc.get(k) for k in ("label", "reviewer", "verified_at")}
        missing = [k for k, v in values.items() if not isinstance(v, str) or not v.strip()]
        if missing:
            raise ValueError(f"missing {', '.join(missing)}")
        label = str(values["label"]).strip().upper()
        if label not in OUTPUTS:
            raise ValueError(f"label {label!r} is not one of {OUTPUTS}")
        return cls(label, str(values["reviewer"]), str(values["verified_at"]))


def _entry(verified_path: Path) -> Item:
    image = verified_path.with_name(verified_path.name[: -len(VERIFIED_SUFFIX)])
    if image.suffix.lower() not in IMAGE_SUFFIXES:
        raise ValueError("not an image")
    if not image.is_file():
        raise ValueError("image missing")
    if not image.with_name(image.name + ".json").is_file():
        raise ValueError("result JSON missing")
    verdict = Verified.from_json(json.loads(verified_path.read_text(encoding="utf-8")))
    return Item(image, OUTPUTS.index(verdict.label), SOURCE, verdict.label.lower())


def archive_items(folders: list[Path]) -> list[Item]:
    """Every person-verified image under ``folders``, sorted by path (a stable training order)."""
    items: list[Item] = []
    skipped: Counter[str] = Counter()
    for folder in folders:
        if not folder.is_dir():
            raise SystemExit(f"--archive {folder}: not a folder")
        for verified in sorted(folder.rglob(f"*{VERIFIED_SUFFIX}")):
            try:
                items.append(_entry(verified))
            except (OSError, ValueError) as exc:
                skipped[str(exc).split(":")[0]] += 1
    if folders:
        print(f"archive: {len(items)} verified images, skipped {dict(skipped) or 'none'}", flush=True)
    return sorted(items, key=lambda it: str(it.path))
