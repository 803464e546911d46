"""Static checks of the four images' recipes: reproducible installs (hashed lock
files, --require-hashes), and gunicorn writing only where it may. Building and
running the images is tools/build_images.sh's job."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# Dockerfile -> the lock it must install, and the requirements file that lock comes from.
IMAGES = {
    "functions/preprocess/Dockerfile": "functions/preprocess/requirements",
    "functions/predict/Dockerfile": "functions/predict/requirements",
    "webapp/Dockerfile": "webapp/requirements",
    "knative/eventsource/Dockerfile": "functions/preprocess/requirements",
}
_PIN = re.compile(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==([^\s;\\]+)", re.MULTILINE)


def _locked(lock: Path) -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) of every requirement in a pip-compile lock file."""
    entries: dict[str, tuple[str, list[str]]] = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", lock.read_text()):
        match = _PIN.match(block)
        if match:
            entries[match.group(1).lower().replace("_", "-")] = (
                match.group(2),
                re.findall(r"--hash=sha256:([0-9a-f]{64})", block),
            )
    return entries


def _pins(requirements: Path) -> dict[str, str]:
    return {n.lower().replace("_", "-"): v for n, v in _PIN.findall(requirements.read_text())}


@pytest.mark.parametrize("dockerfile", sorted(IMAGES))
def test_image_installs_its_lock_with_required_hashes(dockerfile: str) -> None:
    # Arrange
    text = (REPO / dockerfile).read_text()
    lock = f"{IMAGES[dockerfile]}.lock"

    # Act
    installs = re.findall(r"pip install[^\n]*(?:\\\n[^\n]*)*", text)
    runtime = [line for line in installs if "requirements.lock" in line]

    # Assert
    assert f"COPY {lock} /tmp/requirements.lock" in text
    assert runtime and all("--require-hashes" in line for line in runtime), runtime
    assert "COPY tools/build-requirements.lock" in text and "--no-build-isolation" in text
    assert not re.search(r"pip install[^\n]*requirements\.txt", text), "install the lock, not the loose pins"


@pytest.mark.parametrize("base", [*sorted(set(IMAGES.values())), "tools/build-requirements"])
def test_lock_hashes_every_package_and_matches_the_direct_pins(base: str) -> None:
    # Arrange
    source = REPO / (f"{base}.txt" if (REPO / f"{base}.txt").exists() else f"{base}.in")
    locked = _locked(REPO / f"{base}.lock")

    # Act
    unhashed = sorted(name for name, (_, hashes) in locked.items() if not hashes)
    mismatched = {
        name: (version, locked.get(name, ("missing",))[0])
        for name, version in _pins(source).items()
        if locked.get(name, ("missing",))[0] != version
    }

    # Assert
    assert locked and not unhashed, f"packages without hashes: {unhashed}"
    assert not mismatched, f"{source.name} pins vs lock: {mismatched}"


def test_function_servers_are_pinned_in_the_locks() -> None:
    # Arrange: gunicorn comes in through functions-framework, unpinned in requirements.txt.
    locks = [REPO / f"{IMAGES[d]}.lock" for d in IMAGES if "webapp" not in d]

    # Act
    versions = {lock.parent.name: _locked(lock).get("gunicorn", ("missing",))[0] for lock in locks}

    # Assert
    assert all(v != "missing" for v in versions.values()), versions


@pytest.mark.parametrize("dockerfile", sorted(IMAGES))
def test_runtime_stage_points_xdg_runtime_dir_at_tmp(dockerfile: str) -> None:
    # Arrange
    text = (REPO / dockerfile).read_text()

    # Act
    runtime_stage = text.split("FROM ")[-1]

    # Assert: gunicorn's control socket goes to the writable /tmp, not the root-owned home.
    assert re.search(r"\bXDG_RUNTIME_DIR=/tmp\b", runtime_stage)
    assert "USER 10001:10001" in runtime_stage


@pytest.mark.parametrize("dockerfile", sorted(IMAGES))
def test_everything_the_dockerfile_copies_is_in_the_build_context(dockerfile: str) -> None:
    # Arrange: .dockerignore is an allow-list ("*", then "!path" lines).
    allowed = [
        line[1:].rstrip("/")
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    text = (REPO / dockerfile).read_text()

    # Act
    sources = [
        src for args in re.findall(r"^COPY (?!--from)(.+)$", text, re.MULTILINE) for src in args.split()[:-1]
    ]
    missing = [src for src in sources if not any(src == a or src.startswith(a + "/") for a in allowed)]

    # Assert
    assert sources and not missing, f"{dockerfile} copies what .dockerignore leaves out: {missing}"
