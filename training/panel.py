"""The reference panel shipped beside the model: training-lab cells a lab's calibration must keep right.

A calibration is judged on the lab's own held-out cells and on this fixed panel, so that what
was right stays right (issue 22). The panel is stored as embeddings, not images: the functions
and the web app have no dataset, and a calibration only refits the output layer, so the
embedding is all it needs. Cells: every 3rd PBC validation cell (white cells and ``pbc/other``)
and every 8th Kaggle validation cell, through the runtime path (``cell_tensor`` -> ``Classifier``).

    PYTHONPATH=src python -m training.panel --data ../shared/datasets --model functions/predict/model
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from bloodcell.cellcrop import cell_tensor
from bloodcell.imaging import decode_image
from bloodcell.model import Classifier
from training.splits import pbc_val_items, split_kaggle_train

FILE = "panel.npz"
REPO = Path(__file__).resolve().parents[1]


def build(data: Path, model_dir: Path) -> Path:
    clf = Classifier(model_dir, threads=1)
    items = pbc_val_items(data)[::3] + split_kaggle_train(data)[1][::8]
    embeddings, labels, sources = [], [], []
    for it in items:
        fwd = clf.forward(cell_tensor(decode_image(it.path.read_bytes())))
        if fwd.embedding is None:
            raise SystemExit(f"{model_dir} has no embedding output")
        embeddings.append(fwd.embedding.astype(np.float32))
        labels.append(it.label)
        sources.append(it.source)
    path = model_dir / FILE
    with path.open("wb") as fh:
        np.savez(fh, embeddings=np.stack(embeddings), labels=np.array(labels), sources=np.array(sources))
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--data", type=Path, default=Path(os.environ.get("BLOODCELL_DATASETS", "../shared/datasets"))
    )
    p.add_argument("--model", type=Path, default=REPO / "functions" / "predict" / "model")
    args = p.parse_args()
    print(f"wrote {build(args.data, args.model)}")


if __name__ == "__main__":
    main()
