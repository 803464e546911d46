"""POST Eventarc-style CloudEvents to a running preprocess and predict, and check the result.

Used by tools/build_images.sh against the built images: the upload is written
into folder buckets on a volume both containers share, then preprocess gets
the event Eventarc would send for it, predict the one for the tensor
preprocess wrote; the result JSON must say "classified" with one of the four
labels. Exit status 0 only then.

    python tools/post_cloudevents.py --data DIR --preprocess URL --predict URL [--image FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import requests
from cloudevents.conversion import to_binary

from bloodcell.events import gcs_event
from bloodcell.storage import LocalStorage

LABELS = {"NEUTROPHIL", "EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE"}


def _post(url: str, storage: LocalStorage, bucket: str, name: str) -> None:
    info = storage.stat(bucket, name)
    assert info is not None, f"{bucket}/{name} is missing"
    headers, body = to_binary(gcs_event(info))
    response = requests.post(url, headers=headers, data=body, timeout=120)
    sys.stdout.write(f"POST {url} {bucket}/{name}: {response.status_code}\n")
    response.raise_for_status()


def _wait_for(storage: LocalStorage, bucket: str, seconds: float = 60) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        names = [info.name for info in storage.list(bucket)]
        if names:
            return names[0]
        time.sleep(0.5)
    raise SystemExit(f"nothing appeared in {bucket} within {seconds:.0f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="root of the folder buckets")
    parser.add_argument("--preprocess", required=True)
    parser.add_argument("--predict", required=True)
    parser.add_argument(
        "--image", default="", help="an image to classify (default: one from BLOODCELL_DATASETS)"
    )
    opts = parser.parse_args()

    image = Path(opts.image) if opts.image else None
    if image is None:
        datasets = Path(os.environ.get("BLOODCELL_DATASETS", "../shared/datasets"))
        image = datasets / "bccd" / "JPEGImages" / "BloodImage_00001.jpg"
    storage = LocalStorage(opts.data)
    name = "cellule colorée é.jpg"  # an accented name, as French labs write them
    storage.write("uploads", name, image.read_bytes(), content_type="image/jpeg")
    for path in opts.data.rglob("*"):
        os.chown(path, 10001, 10001)  # the containers' user owns the buckets

    _post(opts.preprocess, storage, "uploads", name)
    tensor = _wait_for(storage, "tensors")
    for path in opts.data.rglob("*"):
        os.chown(path, 10001, 10001)
    _post(opts.predict, storage, "tensors", tensor)
    result_name = _wait_for(storage, "results")
    result = json.loads(storage.read("results", result_name)[0])
    sys.stdout.write(json.dumps(result, ensure_ascii=False) + "\n")
    if result.get("status") != "classified" or result.get("label") not in LABELS:
        raise SystemExit(f"not a classification: {result}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
