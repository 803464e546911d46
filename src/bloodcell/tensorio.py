"""Tensor objects: ``.npy`` bytes, self-describing in shape and dtype.

Loading never unpickles: a tensor object is as untrusted as any upload, since
anyone with write access to the tensor bucket can put a file there.
"""

from __future__ import annotations

import io

import numpy as np

from bloodcell.errors import RejectedInput


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
