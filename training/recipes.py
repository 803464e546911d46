"""The training recipes `train.py` can run, by name: what differs between them, declared once.

`model-3` is the recipe of the shipped model 3.0.0 (the default): with the same seed, data and
thread count it rebuilds that network. `shipped` is 1.0.0's (commit afdf6e2), kept runnable for the
ablations (on tensor contract 2 it gives 1.0.0's network trained on the white-balanced crops).
`candidate-2` is the 2.0.0 candidate that was tried and not shipped (level or behind on validation;
its figures are in baselines/2.0.0-candidate.json); it stays runnable so that the comparison can be
repeated.
"""

from __future__ import annotations

from dataclasses import dataclass

from training.splits import LEGACY_PBC_VAL_FRACTION, PBC_VAL_FRACTION


@dataclass(frozen=True)
class Recipe:
    name: str
    version: str  # written to metadata.json; evaluate.py keeps it
    epochs: int
    pbc_val_fraction: float  # the PBC cells held out from training (and used for the epoch choice)
    stain_standardise: bool  # per-image channel standardisation instead of a fixed rescale to [-1, 1]
    blur_noise: bool  # focus blur and sensor noise on top of the shared augmentation
    worst_class_score: bool  # the epoch score also counts the worst class recall
    augmentation: str
    lab_shift: bool = False  # model 3: another lab's stain, white balance, framing and optics


_SHARED_AUG = (
    "scale 0.75-1.33x, shift, the 8 rotations/flips, hue/stain/saturation/contrast/brightness jitter"
)

RECIPES = {
    r.name: r
    for r in (
        Recipe(
            name="shipped",
            version="1.0.1",
            epochs=28,
            pbc_val_fraction=LEGACY_PBC_VAL_FRACTION,
            stain_standardise=False,
            blur_noise=False,
            worst_class_score=False,
            augmentation=_SHARED_AUG,
        ),
        Recipe(
            name="model-3",
            version="3.0.0",
            epochs=12,  # what 2 shared cores allowed in the session that trained it (about 60 min)
            pbc_val_fraction=PBC_VAL_FRACTION,
            stain_standardise=False,
            blur_noise=False,
            worst_class_score=True,
            augmentation=_SHARED_AUG
            + ", scale 0.7-1.45x, HED stain amounts, stain mix-up between cells, white-balance tilt,"
            " tight framing, lower resolution, 5x5 blur, sensor noise",
            lab_shift=True,
        ),
        Recipe(
            name="candidate-2",
            version="2.0.0",
            epochs=18,
            pbc_val_fraction=PBC_VAL_FRACTION,
            stain_standardise=True,
            blur_noise=True,
            worst_class_score=True,
            augmentation=_SHARED_AUG + ", 3x3 blur on a third of the cells, Gaussian sensor noise",
        ),
    )
}
DEFAULT_RECIPE = "model-3"
