"""Refuse container image references that would not pull, or not pull the same thing twice.

Two rules, for every image in the rendered Knative manifests and every FROM in
the Dockerfiles:
  - it comes from an allowed registry/repository (ALLOWED): repositories that
    were deleted upstream (minio/minio and minio/mc left Docker Hub in 2026)
    stay refused even if someone adds their registry;
  - it names a version: a tag other than `latest`, or a digest.

    kubectl kustomize knative/ | python tools/check_images.py - functions/*/Dockerfile ...
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

# (pattern on the fully qualified repository, why it is trusted)
ALLOWED: tuple[tuple[str, str], ...] = (
    (r"docker\.io/rustfs/rustfs", "the in-cluster object store, official RustFS image"),
    (r"docker\.io/library/python", "Docker official Python base image"),
    (r"dev\.local/bloodcell-[a-z]+", "our images built into minikube's node"),
    (r"[a-z0-9-]+-docker\.pkg\.dev/[a-z][a-z0-9-]+/[a-z0-9-]+/[a-z0-9-]+", "our images in Artifact Registry"),
)
# Repositories known to be gone: refused whatever the allow-list says.
GONE = {"docker.io/minio/minio", "docker.io/minio/mc", "docker.io/bitnami/minio"}

_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
_FROM = re.compile(r"^\s*FROM\s+(?:--platform=\S+\s+)?(\S+)", re.IGNORECASE | re.MULTILINE)
_IMAGE = re.compile(r"^\s*(?:-\s+)?image:\s*['\"]?([^'\"\s#]+)", re.MULTILINE)


def qualify(image: str) -> tuple[str, str]:
    """(fully qualified repository, tag-or-digest part) of an image reference."""
    digest = ""
    if "@" in image:
        image, digest = image.split("@", 1)
        digest = "@" + digest
    tag = ""
    last = image.rsplit("/", 1)[-1]
    if ":" in last:
        image, tag = image.rsplit(":", 1)
    first = image.split("/", 1)[0]
    if "/" not in image or not ("." in first or ":" in first or first == "localhost"):
        image = f"docker.io/{image}" if "/" in image else f"docker.io/library/{image}"
    return image, (f":{tag}" if tag else "") + digest


def problems(images: Iterable[str]) -> list[str]:
    found = []
    for image in sorted(set(images)):
        repository, version = qualify(image)
        if repository in GONE:
            found.append(f"{image}: repository {repository} no longer exists")
        elif not any(re.fullmatch(pattern, repository) for pattern, _ in ALLOWED):
            found.append(f"{image}: {repository} is not an allowed registry/repository")
        if not version or version == ":latest":
            found.append(f"{image}: no version (pin a release tag or a digest)")
        elif not version.startswith(":") and not _DIGEST.search(version):
            found.append(f"{image}: malformed digest")
    return found


def images_in(text: str, dockerfile: bool) -> Iterator[str]:
    if dockerfile:
        stages = set()
        for match in _FROM.finditer(text):
            ref = match.group(1)
            line = text[match.start() : text.find("\n", match.start())]
            alias = re.search(r"\bAS\s+(\S+)", line, re.IGNORECASE)
            if ref not in stages:
                yield ref
            if alias:
                stages.add(alias.group(1))
    else:
        yield from _IMAGE.findall(text)


def main(argv: list[str]) -> int:
    images: list[str] = []
    for arg in argv or ["-"]:
        text = sys.stdin.read() if arg == "-" else Path(arg).read_text()
        images += images_in(text, dockerfile=arg != "-" and Path(arg).name.startswith("Dockerfile"))
    found = problems(images)
    sys.stderr.writelines(f"{line}\n" for line in found)
    sys.stdout.write(f"{len(set(images))} image references checked, {len(found)} problems\n")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
