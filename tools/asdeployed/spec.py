"""What a platform hands one container, as a plain value: the common ground of Knative and Cloud Run."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path

# The local tags tools/build_images.sh gives the four images.
LOCAL_IMAGE = "localhost/bloodcell-{name}:ci"
IMAGES = ("preprocess", "predict", "webapp", "eventsource")


class SpecError(ValueError):
    """A manifest asks for something the container could not be given (or this check cannot give)."""


@dataclasses.dataclass(frozen=True)
class Probe:
    """One probe as the platform runs it: ``path`` None is a TCP connect, else an HTTP GET."""

    kind: str  # startup, readiness or liveness
    port: int
    path: str | None = None


@dataclasses.dataclass(frozen=True)
class Tmpfs:
    """An emptyDir (Knative): a scratch folder, ``size_bytes`` None when it has no sizeLimit."""

    target: str
    size_bytes: int | None


@dataclasses.dataclass(frozen=True)
class SecretMount:
    """A secret volume: the files written under ``source`` on the host, mounted read-only at ``target``."""

    source: Path
    target: str
    files: tuple[str, ...]
    mode: int = 0o444


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One container as deployed. ``command``/``args`` None keep the image's ENTRYPOINT/CMD."""

    platform: str
    workload: str
    image: str  # one of IMAGES
    env: Mapping[str, str]
    command: tuple[str, ...] | None
    args: tuple[str, ...] | None
    user: str | None  # "UID" or "UID:GID"; None: the image's USER
    read_only: bool
    drop_all_capabilities: bool
    no_new_privileges: bool
    tmpfs: tuple[Tmpfs, ...]
    secrets: tuple[SecretMount, ...]
    port: int
    probes: tuple[Probe, ...]

    @property
    def title(self) -> str:
        return f"{self.platform}/{self.workload} (bloodcell-{self.image})"


_QUANTITY = re.compile(r"^(\d+)(Ki|Mi|Gi|Ti|k|M|G|T)?$")
_FACTOR = {
    None: 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}


def quantity_bytes(text: str) -> int:
    """A Kubernetes memory quantity ("256Mi") in bytes; the forms the manifests use, strictly."""
    found = _QUANTITY.match(str(text))
    if not found:
        raise SpecError(f"size {text!r} is not a quantity this check understands (e.g. 256Mi)")
    return int(found.group(1)) * _FACTOR[found.group(2)]


def image_of(reference: str) -> str:
    """Which of our images a deployed image reference names (registry, tag and digest aside)."""
    last = reference.rsplit("/", 1)[-1].split("@", 1)[0].split(":", 1)[0]
    name = last.removeprefix("bloodcell-")
    if name not in IMAGES:
        raise SpecError(f"image {reference!r} is none of ours ({', '.join(IMAGES)})")
    return name


def with_env(spec: RunSpec, **overrides: str) -> RunSpec:
    """The spec with some environment values replaced (the loopback stand-ins for platform services)."""
    unknown = set(overrides) - set(spec.env)
    if unknown:
        raise SpecError(
            f"{spec.title}: no {', '.join(sorted(unknown))} in its environment to point at loopback"
        )
    return dataclasses.replace(spec, env={**spec.env, **overrides})
