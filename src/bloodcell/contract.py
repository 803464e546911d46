"""The tensor contract: everything preprocess and predict must agree on.

Preprocess stamps ``CONTRACT.version`` on every tensor it writes; predict refuses a
tensor whose version, shape or dtype differ, and refuses to start if the model's own
``contract.json`` (written by training from this module) disagrees with it.
Change any field here and the version must change too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bloodcell.errors import ConfigurationError

LABELS: tuple[str, ...] = ("EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL")


@dataclass(frozen=True)
class TensorContract:
    version: str
    height: int
    width: int
    channels: int
    dtype: str
    # pixel value v (0..255) becomes v * scale: the model normalises further itself
    scale: float
    labels: tuple[str, ...]

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.height, self.width, self.channels)

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["labels"] = list(self.labels)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TensorContract:
        try:
            labels = data["labels"]
            if not isinstance(labels, list):
                raise TypeError("labels must be a list")
            return cls(
                version=str(data["version"]),
                height=int(data["height"]),
                width=int(data["width"]),
                channels=int(data["channels"]),
                dtype=str(data["dtype"]),
                scale=float(data["scale"]),
                labels=tuple(str(x) for x in labels),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigurationError(f"malformed tensor contract: {exc}") from exc


# 2: the crop is white-balanced on the picture's background and padded, not clamped (cellcrop.py)
CONTRACT = TensorContract(
    version="2",
    height=96,
    width=96,
    channels=3,
    dtype="float32",
    scale=1.0 / 255.0,
    labels=LABELS,
)


def check_model_contract(model_dir: Path) -> TensorContract:
    """Fail fast when the shipped model was trained for another contract."""
    path = model_dir / "contract.json"
    try:
        shipped = TensorContract.from_json(json.loads(path.read_text()))
    except FileNotFoundError as exc:
        raise ConfigurationError(f"model contract not found: {path}") from exc
    if shipped != CONTRACT:
        raise ConfigurationError(
            f"model at {model_dir} was trained for contract {shipped.version} "
            f"{shipped.shape}, but this code speaks contract {CONTRACT.version} {CONTRACT.shape}"
        )
    return shipped
