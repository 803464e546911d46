"""Fresh virtual environments from requirement lists, cached under bench/out/venvs.

A venv is keyed on its requirement lines and the Python version, so editing a
requirements file makes a new one and a repeated run reuses the old one. Venvs
are made without pip (``--without-pip``) and filled by this interpreter's pip
(``pip --python``), so their site-packages hold the dependencies and nothing else.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

from common import OUT, REPO

TF_DEFAULT_PIN = "tensorflow-cpu==2.21.0"


def read_requirements(path: Path) -> list[str]:
    lines = []
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            lines.append(line)
    return lines


def _name(requirement: str) -> str:
    for sep in ("==", ">=", "<=", "~=", "!=", ">", "<", "[", ";", " "):
        requirement = requirement.split(sep, 1)[0]
    return requirement.strip().lower().replace("_", "-")


def function_requirements(function: str) -> tuple[list[str], str]:
    """A function's runtime requirements, and where they came from."""
    path = REPO / "functions" / function / "requirements.txt"
    if path.is_file():
        return read_requirements(path), str(path.relative_to(REPO))
    stand_in = ["numpy", "pillow", "functions-framework", "cloudevents", "requests"]
    if function == "predict":
        stand_in.append("ai-edge-litert")
    return stand_in, "stand-in list (requirements.txt missing)"


def tensorflow_pin() -> str:
    path = REPO / "training" / "requirements.txt"
    if path.is_file():
        for line in read_requirements(path):
            if _name(line) in ("tensorflow-cpu", "tensorflow"):
                return line
    return TF_DEFAULT_PIN


def with_tensorflow(requirements: list[str]) -> list[str]:
    """The same function as the original system had it: TensorFlow in place of LiteRT."""
    kept = [r for r in requirements if _name(r) not in ("ai-edge-litert", "tflite-runtime")]
    return [*kept, tensorflow_pin()]


def baseline_requirements() -> tuple[list[str], str]:
    """The training environment (the TensorFlow baseline for cold start)."""
    path = REPO / "training" / "requirements.txt"
    if path.is_file():
        return read_requirements(path), str(path.relative_to(REPO))
    return [TF_DEFAULT_PIN, "numpy"], "stand-in list (training/requirements.txt missing)"


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _venv_dir(label: str, requirements: list[str]) -> Path:
    key = hashlib.sha256("\n".join([sys.version, *sorted(requirements)]).encode()).hexdigest()[:12]
    return OUT / "venvs" / f"{label}-{key}"


def cached_venv(label: str, requirements: list[str]) -> Path | None:
    """The venv for exactly these requirements if an earlier run made it, else None."""
    venv = _venv_dir(label, requirements)
    return venv if (venv / ".bench-complete").is_file() else None


def ensure_venv(label: str, requirements: list[str]) -> Path:
    """The cached venv holding exactly these requirements; made on first use."""
    venv = _venv_dir(label, requirements)
    done = venv / ".bench-complete"
    if done.is_file():
        return venv
    if venv.exists():
        shutil.rmtree(venv)
    venv.parent.mkdir(parents=True, exist_ok=True)
    print(
        f"bench: making venv {venv.name} ({len(requirements)} requirements)...", file=sys.stderr, flush=True
    )
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv_python(venv)),
            "install",
            "--quiet",
            "--disable-pip-version-check",
            *requirements,
        ],
        check=True,
    )
    done.write_text("\n".join(requirements) + "\n")
    return venv


def site_packages(venv_or_prefix: Path) -> Path:
    found = sorted(venv_or_prefix.glob("lib/python3*/site-packages"))
    if not found:
        raise FileNotFoundError(f"no site-packages under {venv_or_prefix}")
    return found[0]


def tree_bytes(path: Path) -> int:
    """Bytes on disk (apparent sizes of regular files), symlinks not followed."""
    total = 0
    for item in path.rglob("*"):
        try:
            if item.is_file() and not item.is_symlink():
                total += item.stat().st_size
        except OSError:
            continue
    return total
