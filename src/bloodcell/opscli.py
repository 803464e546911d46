"""The operators' commands: ``bloodcell erase`` and ``bloodcell retention sweep``.

Kept beside ``cli`` (which registers them) so the everyday commands stay short to read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from bloodcell.logs import configure_logging
from bloodcell.settings import Settings


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings.from_env(overrides={"data_dir": args.data_dir})
    configure_logging(settings)
    return settings


def cmd_erase(args: argparse.Namespace) -> int:
    """Every copy of one upload or slide, on the buckets the environment names."""
    from bloodcell.erasure import erase
    from bloodcell.storage import open_archive, open_storage

    settings = _settings(args)
    if not args.yes:
        print(
            f"bloodcell erase: this removes every copy of {args.target!r} (uploads, tensors, results, "
            "review records, verified labels, archive copies, dead letters) for good; "
            "run again with --yes",
            file=sys.stderr,
        )
        return 1
    record, steps = erase(args.target, settings, open_storage(settings), open_archive(settings))
    removed = ", ".join(f"{n} {role}" for role, n in sorted(record.removed.items())) or "nothing found"
    print(f"erased ({record.scope}): {removed}")
    print(f"erasure record: {settings.result_bucket}/{record.name} (target sha256 {record.target_sha256})")
    for step in steps:
        print(f"left for an administrator: {step}")
    return 3 if steps else 0


def cmd_retention_sweep(args: argparse.Namespace) -> int:
    """Once, now: what the retention settings expired (``bloodcell serve`` runs this hourly)."""
    from bloodcell.retention import sweep
    from bloodcell.storage import open_archive, open_storage

    settings = _settings(args)
    removed = sweep(settings, open_storage(settings), open_archive(settings))
    print(", ".join(f"{n} {bucket}" for bucket, n in sorted(removed.items())) or "nothing expired")
    return 0


def add_commands(sub: Any) -> None:
    data_dir = {
        "type": Path,
        "help": "local backend's folder buckets (BLOODCELL_DATA_DIR, default ./bloodcell-data)",
    }
    erase = sub.add_parser(
        "erase",
        help="remove every copy of an upload or a slide (a patient's right to erasure)",
        description="Remove every copy of NAME (an upload) or SLIDE (a folder of the upload bucket)\n"
        "on every bucket: upload, tensor, result, review records, verified labels, archive copies\n"
        "(every version the identity may delete) and dead letters. An erasure record without the\n"
        "name goes to the result bucket's _erasure/ folder. Exit 3: steps left for an administrator.\n"
        "See docs/security.md.",
        epilog="example: bloodcell erase lame-042 --yes",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    erase.add_argument("target", help="an upload's object name, or a slide id")
    erase.add_argument("--yes", action="store_true", help="really erase (nothing happens without it)")
    erase.add_argument("--data-dir", **data_dir)
    erase.set_defaults(func=cmd_erase)

    retention = sub.add_parser(
        "retention",
        help="remove what the *_RETENTION_DAYS settings expired",
        description="Apply UPLOAD_RETENTION_DAYS, RESULT_RETENTION_DAYS and ARCHIVE_RETENTION_DAYS\n"
        "(0 keeps everything) to the buckets, once. `bloodcell serve` does it every\n"
        "RETENTION_SWEEP_HOURS; deployed buckets use lifecycle rules instead (terraform/, knative/).",
        epilog="example: RESULT_RETENTION_DAYS=365 bloodcell retention sweep --data-dir /srv/cells",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = retention.add_subparsers(dest="action", required=True, metavar="ACTION")
    sweep = actions.add_parser("sweep", help="remove expired objects now")
    sweep.add_argument("--data-dir", **data_dir)
    sweep.set_defaults(func=cmd_retention_sweep)
