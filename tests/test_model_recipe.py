"""`nox -s train` must rebuild the model we ship: its default recipe is the shipped metadata's.

The byte-for-byte check (a full training run) is too slow for the suite; it is recorded in
training/README.md. These checks catch the cheap way to lose reproduction: editing the default
recipe (epochs, held-out cells, version) in place for an experiment. Needs ../shared/datasets.
"""

from __future__ import annotations

import json
from pathlib import Path

from training.recipes import DEFAULT_RECIPE, RECIPES
from training.splits import split_kaggle_train, split_pbc

REPO = Path(__file__).resolve().parents[1]
SHIPPED = json.loads((REPO / "functions" / "predict" / "model" / "metadata.json").read_text())


def test_the_default_recipe_is_the_shipped_models() -> None:
    recipe = RECIPES[DEFAULT_RECIPE]
    training = SHIPPED["training"]

    assert recipe.version == SHIPPED["version"]
    assert recipe.epochs == training["epochs"]
    assert training.get("recipe", DEFAULT_RECIPE) == DEFAULT_RECIPE


def test_the_default_recipe_holds_out_the_cells_the_shipped_model_did_not_train_on(datasets: Path) -> None:
    recipe = RECIPES[DEFAULT_RECIPE]
    sources = SHIPPED["training"]["sources"]

    ptr, pva = split_pbc(datasets, SHIPPED["split_seed"], recipe.pbc_val_fraction)
    ktr, kva = split_kaggle_train(datasets, SHIPPED["split_seed"])

    for source, key in (("pbc", "pbc/wbc"), ("pbc-other", "pbc/other (as OTHER)")):
        assert sum(it.source == source for it in ptr) == sources[key]["train"]
        assert sum(it.source == source for it in pva) == sources[key]["val"]
    assert (len(ktr), len(kva)) == tuple(sources["kaggle-blood-cells/TRAIN (grouped by smear)"].values())


def test_the_earlier_recipes_differ_from_the_shipped_one_only_in_declared_fields() -> None:
    shipped, first, candidate = RECIPES[DEFAULT_RECIPE], RECIPES["shipped"], RECIPES["candidate-2"]

    assert shipped.lab_shift and not (first.lab_shift or candidate.lab_shift)  # model 3's augmentation
    assert not (first.stain_standardise or first.blur_noise or first.worst_class_score)
    assert candidate.stain_standardise and candidate.blur_noise and candidate.worst_class_score
    assert len({shipped.version, first.version, candidate.version}) == 3
