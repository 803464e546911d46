"""2. Inference: one tensor through the LiteRT interpreter at 1 thread; FLOPs and GFLOP/s.

FLOPs are counted from the .tflite graph itself (no TensorFlow needed): an
interpreter built without the default XNNPACK delegate lists every op with its
input and output tensor indices, and the tensor details give their shapes.
A multiply-add is 2 FLOPs:
  CONV_2D            2 * H_out * W_out * C_out * K_h * K_w * C_in      (filter O,Kh,Kw,I)
  DEPTHWISE_CONV_2D  2 * H_out * W_out * C_out * K_h * K_w             (filter 1,Kh,Kw,O)
  TRANSPOSE_CONV     2 * H_in * W_in * C_in * K_h * K_w * C_out
  FULLY_CONNECTED    2 * rows * C_out * C_in                           (weights O,I)
  BATCH_MATMUL       2 * prod(batch) * M * N * K
Everything else (adds, activations, pooling, means, softmax) is counted apart as one
FLOP per output element ("other"), which is a small share in a conv net.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from common import summary

_MATMUL_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "FULLY_CONNECTED", "BATCH_MATMUL", "CONV_3D"}


def count_flops(model_path: Path) -> dict[str, object]:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(
        model_path=str(model_path),
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    interpreter.allocate_tensors()
    shapes = {t["index"]: tuple(int(x) for x in t["shape"]) for t in interpreter.get_tensor_details()}
    dtypes = {t["index"]: np.dtype(t["dtype"]).name for t in interpreter.get_tensor_details()}
    per_op: dict[str, float] = {}
    other = 0.0
    weight_dtypes: set[str] = set()
    for op in interpreter._get_ops_details():
        name = op["op_name"]
        ins = [i for i in op["inputs"] if i >= 0]
        outs = [i for i in op["outputs"] if i >= 0]
        if not outs:
            continue
        out = shapes.get(outs[0], ())
        flops = 0.0
        if name == "CONV_2D" and len(ins) >= 2:
            o, kh, kw, i = shapes[ins[1]]
            flops = 2.0 * np.prod(out[:-1]) * o * kh * kw * i
            weight_dtypes.add(dtypes[ins[1]])
        elif name == "DEPTHWISE_CONV_2D" and len(ins) >= 2:
            _, kh, kw, o = shapes[ins[1]]
            flops = 2.0 * np.prod(out[:-1]) * o * kh * kw
            weight_dtypes.add(dtypes[ins[1]])
        elif name == "TRANSPOSE_CONV" and len(ins) >= 3:
            o, kh, kw, i = shapes[ins[1]]
            src = shapes[ins[2]]
            flops = 2.0 * np.prod(src[:-1]) * i * kh * kw * o
        elif name == "FULLY_CONNECTED" and len(ins) >= 2:
            o, i = shapes[ins[1]][-2:]
            rows = np.prod(out) / o if o else 0
            flops = 2.0 * rows * o * i
            weight_dtypes.add(dtypes[ins[1]])
        elif name == "BATCH_MATMUL" and len(ins) >= 2:
            k = shapes[ins[0]][-1]
            flops = 2.0 * np.prod(out) * k
        elif name == "CONV_3D" and len(ins) >= 2:
            kd, kh, kw, i, o = shapes[ins[1]]
            flops = 2.0 * np.prod(out[:-1]) * o * kd * kh * kw * i
        else:
            other += float(np.prod(out)) if out else 0.0
            per_op[name] = per_op.get(name, 0.0)
            continue
        per_op[name] = per_op.get(name, 0.0) + flops
    matmul = sum(v for k, v in per_op.items() if k in _MATMUL_OPS)
    return {
        "mflops": round(float(matmul) / 1e6, 2),
        "other_mflops": round(other / 1e6, 2),
        "by_op_mflops": {k: round(float(v) / 1e6, 2) for k, v in sorted(per_op.items()) if v},
        "ops": len(interpreter._get_ops_details()),
        "weight_dtypes": sorted(weight_dtypes),
        "method": "conv/depthwise/transpose-conv/fully-connected/batch-matmul MACs x2 from the tflite graph "
        "(tensor shapes via the interpreter); elementwise ops counted apart",
    }


_PEAK = r"""
import json, time, numpy as np
n = 512
a = np.random.default_rng(0).random((n, n), dtype=np.float32)
b = np.random.default_rng(1).random((n, n), dtype=np.float32)
a @ b
best = 1e9
for _ in range(20):
    t = time.perf_counter(); a @ b; best = min(best, time.perf_counter() - t)
print(json.dumps({"gflops": 2 * n**3 / best / 1e9}))
"""


def cpu_reference() -> float:
    """This CPU's float32 GEMM rate at one thread (numpy's BLAS, 512x512), for scale."""
    env = {
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PATH": "/usr/bin:/bin",
    }
    out = subprocess.run([sys.executable, "-c", _PEAK], capture_output=True, text=True, env=env, check=True)
    import json

    return round(json.loads(out.stdout)["gflops"], 1)


def run(model_dir: Path, tensor: np.ndarray, runs: int) -> dict[str, object]:
    from ai_edge_litert.interpreter import Interpreter

    from bloodcell.model import Classifier

    interpreter = Interpreter(model_path=str(model_dir / "model.tflite"), num_threads=1)
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]["index"]
    out = interpreter.get_output_details()[0]["index"]
    batch = tensor[np.newaxis]
    classifier = Classifier(model_dir, threads=1)  # the pipeline's own path: checks, lock, softmax
    for _ in range(max(10, runs // 10)):
        interpreter.set_tensor(inp, batch)
        interpreter.invoke()
        classifier.predict(tensor)
    invoke_ms: list[float] = []
    predict_ms: list[float] = []
    for _ in range(runs):  # interleaved: the bare invoke, then the classifier's whole predict
        started = time.perf_counter()
        interpreter.set_tensor(inp, batch)
        interpreter.invoke()
        interpreter.get_tensor(out)
        invoke_ms.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        classifier.predict(tensor)
        predict_ms.append((time.perf_counter() - started) * 1000)
    flops = count_flops(model_dir / "model.tflite")
    invoke = summary(invoke_ms, 3)
    peak = cpu_reference()
    achieved = flops["mflops"] / invoke["median"] if invoke["median"] else None  # MFLOP/ms = GFLOP/s
    return {
        "threads": 1,
        "invoke_ms": invoke,
        "classifier_predict_ms": summary(predict_ms, 3),
        "flops": flops,
        "mflops": flops["mflops"],
        "achieved_gflops": round(achieved, 2) if achieved else None,
        "cpu_reference_gflops": peak,
        "cpu_reference": "numpy float32 512x512 matmul, 1 BLAS thread, best of 20",
        "fraction_of_reference": round(achieved / peak, 2) if achieved and peak else None,
    }
