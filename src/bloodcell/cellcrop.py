"""The one image-to-tensor transform, shared by training, preprocess and classify.

PROVISIONAL: centre crop and resize; the model work replaces this body with
white-cell localisation. The signature is the contract.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from bloodcell.contract import CONTRACT


def cell_tensor(rgb: Image.Image) -> np.ndarray:
    """An RGB picture to a ``CONTRACT.shape`` float32 array, scaled by ``CONTRACT.scale``."""
    width, height = rgb.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    crop = rgb.crop((left, top, left + side, top + side))
    small = crop.resize((CONTRACT.width, CONTRACT.height), Image.Resampling.BILINEAR)
    return np.asarray(small, dtype=np.float32) * np.float32(CONTRACT.scale)
