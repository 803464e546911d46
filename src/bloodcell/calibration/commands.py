"""``bloodcell calibrate``, ``bloodcell model list | activate | rollback | audit``, ``bloodcell reclassify``.

Thin: arguments in, ``service`` and ``registry`` do the work, one JSON document or a few
lines out. The registry is ``MODEL_BUCKET`` on the pipeline's storage (``--data-dir`` for
folder buckets), so these commands change what a running stack answers with at its next event.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from pathlib import Path
from typing import Any

from bloodcell.calibration.registry import SHIPPED, Registry
from bloodcell.errors import RejectedInput
from bloodcell.settings import Settings


def _settings(args: argparse.Namespace) -> Settings:
    from bloodcell.logs import configure_logging

    settings = Settings.from_env(overrides={"data_dir": getattr(args, "data_dir", None)})
    configure_logging(settings)
    return settings


def _registry(settings: Settings) -> Registry:
    from bloodcell.calibration.qcrun import open_registry

    return open_registry(settings)  # promote, activate and rollback re-run the QC panel


def _who(args: argparse.Namespace) -> str:
    if args.by:
        return str(args.by)
    try:
        return os.environ.get("BLOODCELL_USER") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def cmd_calibrate(args: argparse.Namespace) -> int:
    from bloodcell.calibration import cells, service
    from bloodcell.imaging import ImageLimits
    from bloodcell.model import default_model_dir, load_classifier

    settings = _settings(args)
    model_dir = settings.model_dir or default_model_dir()
    limits = ImageLimits(max_bytes=settings.max_upload_bytes, max_pixels=settings.max_image_pixels)
    try:
        items, source, origin = cells.named(settings, args.labelled, args.slides)
        lab = cells.embed(load_classifier(model_dir, settings.model_threads), items, limits)
        outcome = service.run(_registry(settings), model_dir, lab, source, origin, _who(args), args.promote)
    except RejectedInput as exc:
        print(f"bloodcell calibrate: {exc.reason}", file=sys.stderr)
        return 1
    record = outcome.record
    if args.json:
        print(record.to_json().decode("utf-8"), flush=True)
    else:
        _print_evaluation(record.version, record.evaluation, record.decision)
    return 0 if outcome.decision.promoted else 3


def _print_evaluation(version: str, evaluation: Any, decision: Any) -> None:
    e = evaluation
    print(f"calibration {version}: {e['cells']} held-out cells ({e['folds']} folds), vs {e['active']}")
    print(f"  {'class':<12}{'cells':>6}  {'candidate':>22}  {'active':>22}")
    for row in e["per_class"]:
        c, a = row["candidate_interval"], row["active_interval"]
        print(
            f"  {row['label']:<12}{row['cells']:>6}  {row['candidate']:>6.1%} [{c[0]:.2f}, {c[1]:.2f}]"
            f"        {row['active']:>6.1%} [{a[0]:.2f}, {a[1]:.2f}]"
        )
    print(f"  accuracy: candidate {e['candidate_accuracy']:.1%}, active {e['active_accuracy']:.1%}")
    print(f"  fixed {e['wins']}, broken {e['losses']} (sign test p = {e['p_value']:.4f})")
    if e["panel_candidate"] is not None:
        print(
            f"  reference panel ({e['panel_cells']} cells): candidate {e['panel_candidate']:.1%}, "
            f"active {e['panel_active']:.1%}"
        )
    verdict = "PROMOTED" + (" (forced)" if decision["forced"] else "") if decision["promoted"] else "REFUSED"
    print(f"  {verdict}" + "".join(f"\n  - {r}" for r in decision["reasons"]), flush=True)


def cmd_model(args: argparse.Namespace) -> int:
    registry = _registry(_settings(args))
    try:
        if args.model_command == "list":
            pointer, _ = registry.pointer()
            active = pointer.version
            print(f"{'*' if active is None else ' '} {SHIPPED:<24} the model without calibration")
            for r in registry.versions():
                e, d = r.evaluation, r.decision
                mark = "*" if r.version == active else " "
                state = "promoted" if d.get("promoted") else "refused"
                print(
                    f"{mark} {r.version:<24} {r.model_name} {r.model_version}  "
                    f"{sum(r.counts.values())} cells  "
                    f"{e.get('active_accuracy', 0):.1%} -> {e.get('candidate_accuracy', 0):.1%}  {state}  "
                    f"{r.created_at} by {r.created_by}",
                    flush=True,
                )
        elif args.model_command == "activate":
            pointer = registry.activate(args.version, _who(args))
            print(f"active: {pointer.version or SHIPPED}", flush=True)
        elif args.model_command == "rollback":
            pointer = registry.rollback(_who(args))
            print(f"active: {pointer.version or SHIPPED}", flush=True)
        else:
            for entry in registry.audit_trail():
                print(json.dumps(entry, ensure_ascii=False), flush=True)
    except RejectedInput as exc:
        print(f"bloodcell model: {exc.reason}", file=sys.stderr)
        return 1
    return 0


def cmd_reclassify(args: argparse.Namespace) -> int:
    from bloodcell.calibration.reclassify import active_predictor, reclassify
    from bloodcell.calibration.rerun import NO_TENSOR, NOT_DECODED, PENDING, REPLACED, model_words
    from bloodcell.storage import open_storage

    settings = _settings(args)
    storage = open_storage(settings)
    try:
        run = reclassify(storage, settings, args.slide, _who(args), active_predictor(settings, storage))
    except RejectedInput as exc:
        print(f"bloodcell reclassify: {exc.reason}", file=sys.stderr)
        return 1
    if args.json:
        print(run.to_json().decode("utf-8"), flush=True)
        return 0
    print(f"slide {run.slide}: {', '.join(run.before_models) or 'nothing'} -> {model_words(run.model)}")
    print(
        f"  {run.count(REPLACED)} cells re-run, {run.changed} changed class, "
        f"{run.count(NO_TENSOR)} without a stored tensor (result kept), {run.count(PENDING)} still pending, "
        f"{run.count(NOT_DECODED)} rejected before the model (result kept)"
    )
    for before, after, n in run.transitions():
        print(f"  {before} -> {after}: {n}")
    for cell in run.cells:
        if cell.outcome == NO_TENSOR:
            print(f"  kept: {cell.upload_name} (tensor gone)")
    print(f"  history: {run.name}", flush=True)
    return 0


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="local backend's folder buckets (BLOODCELL_DATA_DIR, default ./bloodcell-data)",
    )
    parser.add_argument(
        "--by", help="who does this, for the audit trail (default: BLOODCELL_USER or login name)"
    )


def add_commands(sub: Any) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    calibrate = sub.add_parser(
        "calibrate",
        help="fit a calibration for this lab from its verified cells (see docs/calibration.md)",
        description="Refit the model's output layer on the lab's verified cells, compare it with the active\n"
        "model on held-out cells and the reference panel, store it in MODEL_BUCKET, and make it\n"
        "active when the gate passes (or --promote). Exit status 0 promoted, 3 refused.",
        epilog="examples:\n  bloodcell calibrate --labelled verified/   (one sub-folder per class)\n"
        "  bloodcell calibrate --slides lame-041 lame-042\n"
        "  bloodcell calibrate --slides   (every signed-off slide)",
        formatter_class=fmt,
    )
    source = calibrate.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--labelled", type=Path, metavar="DIR", help="one sub-folder per class; others are OTHER"
    )
    source.add_argument("--slides", nargs="*", metavar="SLIDE", help="signed-off slides (none named: all)")
    calibrate.add_argument("--promote", action="store_true", help="activate even when the gate refuses")
    calibrate.add_argument("--json", action="store_true", help="print the stored version document")
    _common(calibrate)
    calibrate.set_defaults(func=cmd_calibrate)
    model = sub.add_parser(
        "model",
        help="the model registry: list, activate VERSION, rollback, audit",
        description="Which calibration answers: the next event after activate or rollback uses it.",
        epilog="examples:\n  bloodcell model list\n  bloodcell model activate 20261207T101500Z-a1b2c3\n"
        "  bloodcell model activate shipped\n  bloodcell model rollback",
        formatter_class=fmt,
    )
    actions = model.add_subparsers(dest="model_command", required=True, metavar="ACTION")
    for name, text in (
        ("list", "every version, * marking the active one"),
        ("rollback", "back to the version active before"),
        ("audit", "the audit trail, one JSON line per action"),
    ):
        _common(actions.add_parser(name, help=text))
    activate = actions.add_parser("activate", help="make VERSION (or 'shipped') the active model")
    activate.add_argument("version", metavar="VERSION")
    _common(activate)
    model.set_defaults(func=cmd_model)
    rerun = sub.add_parser(
        "reclassify",
        help="re-run a slide's cells through the active model, keeping the old results in its history",
        description="Every cell of SLIDE again, from its stored tensor, with the model the predict function\n"
        "would use now. The replaced results are kept under _reclassify/<slide>/ in the result\n"
        "bucket. A signed-off slide is refused: reopen it first (docs/calibration.md).",
        epilog="example:\n  bloodcell reclassify lame-041 --data-dir bloodcell-data",
        formatter_class=fmt,
    )
    rerun.add_argument("slide", metavar="SLIDE")
    rerun.add_argument("--json", action="store_true", help="print the stored history record")
    _common(rerun)
    rerun.set_defaults(func=cmd_reclassify)
