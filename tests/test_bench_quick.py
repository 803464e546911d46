"""The benchmark suite's smoke run: `python bench/run.py --quick` produces every figure.

It checks that each figure was measured, never its value: timing belongs to the
benchmark report (docs/performance.md), not to pass/fail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_quick_bench_produces_every_figure(tmp_path: Path, datasets: Path, model_dir: Path) -> None:
    out = tmp_path / "results.json"
    env = dict(os.environ, BLOODCELL_DATASETS=str(datasets))
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "run.py"),
            "--quick",
            "--out",
            str(out),
            "--model-dir",
            str(model_dir),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text())
    sys.path.insert(0, str(REPO / "bench"))
    try:
        import report
    finally:
        sys.path.remove(str(REPO / "bench"))
    assert report.missing_figures(results) == []
    assert results["mode"] == "quick"
    assert results["machine"]["cores"] and results["machine"]["libraries"]["ai-edge-litert"]
    assert {t["target"] for t in results["targets"]} == {t[0] for t in report.TARGETS}
    assert "| target |" in proc.stdout  # the table was printed
