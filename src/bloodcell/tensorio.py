"""Tensor objects: ``.npy`` bytes, self-describing in shape and dtype.

Loading never unpickles: a tensor object is as untrusted as any upload, since
anyone with write access to the tensor bucket can put a file there.
"""

from __future__ import annotations

import io
from collections.abc import Mapping

import numpy as np

from bloodcell.contract import CONTRACT
from bloodcell.errors import RejectedInput
from bloodcell.results import META_CONTRACT


def dump(tensor: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(tensor), allow_pickle=False)
    return buffer.getvalue()


def load(data: bytes) -> np.ndarray:
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise RejectedInput(f"tensor object is not a valid .npy array ({exc})") from exc
    if not isinstance(array, np.ndarray):
        raise RejectedInput("tensor object is not a single array")
    return array


def load_stored(data: bytes, metadata: Mapping[str, str]) -> np.ndarray:
    """A stored tensor object, refused unless preprocess made it for the contract this model expects."""
    version = metadata.get(META_CONTRACT)
    if version != CONTRACT.version:
        raise RejectedInput(
            f"tensor was made for contract version {version}, the model expects {CONTRACT.version}"
        )
    return load(data)
