"""6. Installed size of each function's runtime dependencies, against the same with TensorFlow.

Full run: a fresh venv per requirement list (cached in bench/out/venvs), and the
size of its site-packages (the venv is made without pip, so that is the
dependencies and nothing else). Quick run: no venv is made; the same
requirement lists are resolved in an existing environment (this one, or the
TensorFlow one) and the files of every distribution in their dependency
closure are added up, which gives the same figure without an install.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from common import run_json
from venvs import (
    ensure_venv,
    function_requirements,
    site_packages,
    tree_bytes,
    with_tensorflow,
)

# Run by any interpreter: the dependency closure of the requirement names given on
# argv, with the bytes of the files each distribution installed.
_CLOSURE = r"""
import json, re, sys
from importlib import metadata
def norm(n): return re.sub(r"[-_.]+", "-", n).lower()
dists = {norm(d.metadata["Name"]): d for d in metadata.distributions()}
todo = [norm(re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0]) for r in sys.argv[1:]]
seen, missing = {}, []
while todo:
    name = todo.pop()
    if name in seen or name in missing:
        continue
    d = dists.get(name)
    if d is None:
        missing.append(name); continue
    size = 0
    for f in d.files or ():
        try:
            p = f.locate()
            if p.is_file() and not p.is_symlink():
                size += p.stat().st_size
        except OSError:
            pass
    seen[name] = size
    for req in d.requires or ():
        if "extra ==" in req:
            continue
        todo.append(norm(re.split(r"[\s<>=!~;\[(]", req, maxsplit=1)[0]))
print(json.dumps({"bytes": sum(seen.values()), "packages": seen, "missing": missing}))
"""


def _top(packages: dict[str, int], k: int = 5) -> dict[str, float]:
    biggest = sorted(packages.items(), key=lambda kv: -kv[1])[:k]
    return {name: round(size / 1e6, 1) for name, size in biggest}


def _top_dirs(root: Path, k: int = 5) -> dict[str, float]:
    sizes = {}
    for child in root.iterdir():
        sizes[child.name] = tree_bytes(child) if child.is_dir() else child.stat().st_size
    return _top(sizes, k)


def _fresh(label: str, requirements: list[str]) -> dict[str, object]:
    venv = ensure_venv(label, requirements)
    site = site_packages(venv)
    return {"mb": round(tree_bytes(site) / 1e6, 1), "largest_mb": _top_dirs(site), "method": "fresh venv"}


def _closure(python: str, requirements: list[str], where: str) -> dict[str, object]:
    found = run_json([python, "-c", _CLOSURE, *requirements])
    return {
        "mb": round(found["bytes"] / 1e6, 1),
        "largest_mb": _top(found["packages"]),
        "missing": found["missing"],
        "method": f"dependency closure in {where}",
    }


def run(quick: bool, tf_python: str | None) -> dict[str, object]:
    figures: dict[str, object] = {}
    for function in ("preprocess", "predict"):
        requirements, origin = function_requirements(function)
        tf_requirements = with_tensorflow(requirements)
        if quick:
            own = _closure(sys.executable, requirements, "the bench environment")
            if tf_python:
                tf = _closure(tf_python, tf_requirements, "the TensorFlow environment")
            else:
                tf = {"mb": None, "skipped": "no TensorFlow environment in quick mode"}
        else:
            own = _fresh(function, requirements)
            tf = _fresh("function-tf", tf_requirements)
        figures[function] = {
            "requirements": origin,
            "runtime_deps_mb": own["mb"],
            "runtime_deps": own,
            "with_tensorflow_mb": tf["mb"],
            "with_tensorflow": tf | {"requirements": tf_requirements},
            "tensorflow_over_ours": round(tf["mb"] / own["mb"], 1) if tf["mb"] and own["mb"] else None,
        }
    return figures


if __name__ == "__main__":
    print(json.dumps(run("--quick" in sys.argv, None), indent=2))
