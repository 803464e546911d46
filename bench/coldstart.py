"""1. Cold start of predict: a whole fresh process, LiteRT against the TensorFlow baseline.

Each sample is one new process, timed from spawn to exit by this one:
- ``litert_predict``: imports the predict function's module (functions/predict/main.py:
  functions-framework, the shared package, the LiteRT model loaded at import, as the
  server does) and classifies one real tensor through the pipeline's classifier.
- ``tensorflow``: the same model file, the same tensor, through full TensorFlow's
  ``tf.lite.Interpreter`` in the training environment: the baseline the original system had.
- ``litert_bare``: exactly the TensorFlow script's steps with ai_edge_litert in place of
  TensorFlow, so the runtime alone is compared like for like.
Two times per sample: spawn to the answer printed (``to_answer_s``, the cold start a
caller waits for; the ratio is of these) and spawn to exit (``wall_s``, teardown included).
The three run interleaved (A, B, C, A, B, C...) after one untimed warm-up each, so
the page cache is warm for all of them (a container whose image is already on the node).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, ratio_summary, summary

_PREDICT = r"""
import time
t0 = time.perf_counter()
import importlib.util, json, sys
import numpy as np
import functions_framework, cloudevents.http
import bloodcell.handlers
t1 = time.perf_counter()
spec = importlib.util.spec_from_file_location("predict_main", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)  # loads the model at import, as the function server does
t2 = time.perf_counter()
prediction = bloodcell.handlers.pipeline().classifier.predict(np.load(sys.argv[2]))
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "classify_s": t3 - t2, "label": prediction.label}),
      flush=True)
"""

_BARE = r"""
import time
t0 = time.perf_counter()
import json, sys
import numpy as np
RUNTIME
t1 = time.perf_counter()
interpreter = Interpreter(model_path=sys.argv[1], num_threads=1)
interpreter.allocate_tensors()
t2 = time.perf_counter()
inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
interpreter.set_tensor(inp["index"], np.load(sys.argv[2])[np.newaxis])
interpreter.invoke()
probabilities = interpreter.get_tensor(out["index"])[0]
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "classify_s": t3 - t2,
                  "top": int(probabilities.argmax())}), flush=True)
"""
_LITERT = _BARE.replace("RUNTIME", "from ai_edge_litert.interpreter import Interpreter")
_TF = _BARE.replace("RUNTIME", "import tensorflow as tf\nInterpreter = tf.lite.Interpreter")


def _once(argv: list[str], env: dict[str, str]) -> tuple[float, float, dict[str, float]]:
    """(spawn to answer printed, spawn to exit, the process's own phase timings)."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    answered = time.perf_counter() - started
    _, err = proc.communicate(timeout=300)
    wall = time.perf_counter() - started
    if proc.returncode != 0 or not line.strip():
        raise RuntimeError(f"cold-start process failed ({proc.returncode}): {err[-2000:]}")
    return answered, wall, json.loads(line)


def run(model_dir: Path, tensor_path: Path, repeats: int, tf_python: str | None) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as data:
        env = dict(os.environ)
        env.update(
            MODEL_DIR=str(model_dir),
            BLOODCELL_STORAGE="local",
            BLOODCELL_DATA_DIR=data,
            ARCHIVE_STORAGE="local",
            LOG_LEVEL="WARNING",
        )
        model = str(model_dir / "model.tflite")
        variants: dict[str, list[str]] = {
            "litert_predict": [
                sys.executable,
                "-c",
                _PREDICT,
                str(REPO / "functions/predict/main.py"),
                str(tensor_path),
            ],
            "litert_bare": [sys.executable, "-c", _LITERT, model, str(tensor_path)],
            "python_startup": [sys.executable, "-c", "print('{}', flush=True)"],
        }
        if tf_python:
            variants["tensorflow"] = [tf_python, "-c", _TF, model, str(tensor_path)]
        answers: dict[str, list[float]] = {k: [] for k in variants}
        walls: dict[str, list[float]] = {k: [] for k in variants}
        phases: dict[str, dict[str, list[float]]] = {k: {} for k in variants}
        for argv in variants.values():  # warm-up: page cache, .pyc files
            _once(argv, env)
        for _ in range(repeats):
            for name, argv in variants.items():
                answered, wall, inner = _once(argv, env)
                answers[name].append(answered)
                walls[name].append(wall)
                for key, value in inner.items():
                    if key.endswith("_s"):
                        phases[name].setdefault(key, []).append(value)
    out: dict[str, object] = {}
    for name in variants:
        out[name] = {"to_answer_s": summary(answers[name]), "wall_s": summary(walls[name])} | {
            k: summary(v, 4) for k, v in phases[name].items()
        }
    if tf_python:
        out["tensorflow_over_litert_predict"] = ratio_summary(
            answers["litert_predict"], answers["tensorflow"], 1
        )
        out["tensorflow_over_litert_bare"] = ratio_summary(answers["litert_bare"], answers["tensorflow"], 1)
        out["tensorflow_over_litert_predict_wall"] = ratio_summary(
            walls["litert_predict"], walls["tensorflow"], 1
        )
    else:
        out["tensorflow"] = {"to_answer_s": None, "wall_s": None, "skipped": "no TensorFlow environment"}
        out["tensorflow_over_litert_predict"] = {"median": None, "skipped": "no TensorFlow environment"}
        out["tensorflow_over_litert_bare"] = {"median": None, "skipped": "no TensorFlow environment"}
    out["repeats"] = repeats
    out["tf_python"] = tf_python
    return out
