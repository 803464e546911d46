"""``bloodcell qc panel set | run | status``: the lab's reference panel and its drift alarm.

Thin, like ``commands``: the panel's cells come from the calibration's sources (``cells``),
the work is ``qcrun``'s. Exit status of ``run`` and ``status``: 0 quiet, 3 alarm raised,
1 no panel or nothing usable.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from bloodcell.calibration import qc
from bloodcell.calibration.commands import _common, _settings, _who
from bloodcell.errors import RejectedInput

ALARM = 3


def _show(run: qc.QcRun) -> None:
    calibration = run.calibration or "none (shipped model)"
    print(f"qc run {run.run} ({run.trigger}, by {run.by}) at {run.at}")
    print(f"  model {run.model_name} {run.model_version}, calibration {calibration}")
    print(f"  panel {run.panel_version}: {run.cells} cells, agreement {run.agreement:.1%}")
    print("  " + ", ".join(f"{label} {share:.1%}" for label, share in run.per_class.items()))
    print(f"  baseline {run.baseline_agreement:.1%} (run {run.baseline_run})")
    panel_ood = "n/a" if run.panel_unfamiliar is None else f"{run.panel_unfamiliar:.1%}"
    recent = "too few" if run.recent_unfamiliar is None else f"{run.recent_unfamiliar:.1%}"
    print(f"  unfamiliar: panel {panel_ood}, recent {recent} of {run.recent_cells} cells")
    verdict = "DRIFT ALARM" if run.alarm else "ok"
    print(f"  {verdict}" + "".join(f"\n  - {r}" for r in run.reasons), flush=True)


def cmd_qc(args: argparse.Namespace) -> int:
    from bloodcell.calibration import cells, qcrun

    settings = _settings(args)
    registry = qcrun.open_registry(settings)
    store = qcrun.QcStore(registry.storage, registry.bucket)
    try:
        if args.qc_command == "set":
            items, source, origin = cells.named(settings, args.labelled, args.slides)
            panel = qcrun.set_panel(store, items, qcrun.limits_of(settings), source, origin, _who(args))
            print(f"qc panel {panel.version}: {len(panel.cells)} cells {panel.counts()}", flush=True)
            run = qcrun.run_qc(settings, registry, qc.FIRST, _who(args))
        elif args.qc_command == "run":
            run = qcrun.run_qc(settings, registry, "manual", _who(args))
        else:
            runs = store.runs(1)
            run = runs[-1] if runs else None
    except RejectedInput as exc:
        print(f"bloodcell qc: {exc.reason}", file=sys.stderr)
        return 1
    if run is None:
        print(
            "bloodcell qc: no panel is set: bloodcell qc panel set --labelled DIR | --slides", file=sys.stderr
        )
        return 1
    if getattr(args, "json", False):
        print(run.to_json().decode("utf-8"), flush=True)
    else:
        _show(run)
    return ALARM if run.alarm else 0


def add_commands(sub: Any) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = sub.add_parser(
        "qc",
        help="the lab's QC panel: panel set, run, status (see docs/calibration.md)",
        description="A fixed set of verified cells, classified as the stack would after every change of\n"
        "model and once a day by `bloodcell serve`; a drop in agreement or a jump in unfamiliar cells\n"
        "raises the drift alarm. Exit status 0 quiet, 3 alarm, 1 no panel.",
        epilog="examples:\n  bloodcell qc panel set --labelled panel/\n"
        "  bloodcell qc panel set --slides lame-041 lame-042\n  bloodcell qc run\n  bloodcell qc status",
        formatter_class=fmt,
    )
    actions = parser.add_subparsers(dest="qc_command", required=True, metavar="ACTION")
    panel = actions.add_parser("panel", help="name the panel's cells: panel set")
    panel_actions = panel.add_subparsers(dest="qc_command", required=True, metavar="ACTION")
    set_ = panel_actions.add_parser(
        "set", help="make these verified cells the panel, and run it (the baseline)"
    )
    source = set_.add_mutually_exclusive_group(required=True)
    source.add_argument("--labelled", type=Path, metavar="DIR", help="one sub-folder per white-cell type")
    source.add_argument("--slides", nargs="*", metavar="SLIDE", help="signed-off slides (none named: all)")
    set_.add_argument("--json", action="store_true", help="print the run document")
    _common(set_)
    for name, text in (("run", "run the panel now with the active model"), ("status", "the latest run")):
        action = actions.add_parser(name, help=text)
        action.add_argument("--json", action="store_true", help="print the run document")
        _common(action)
    parser.set_defaults(func=cmd_qc)
