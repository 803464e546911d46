"""Reading the PDFs the reports write, with a real PDF reader."""

from __future__ import annotations

import subprocess
from pathlib import Path


def poppler(tool: str, data: bytes, tmp_path: Path, *args: str) -> str:
    """Debian's poppler-utils (installed by .ci/run): a real PDF reader, not reportlab reading itself."""
    path = tmp_path / "report.pdf"
    path.write_bytes(data)
    out = ["-"] if tool == "pdftotext" else []
    done = subprocess.run(
        [tool, *args, str(path), *out], capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout
