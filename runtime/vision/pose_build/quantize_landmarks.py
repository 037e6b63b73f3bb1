"""Static int8 quantisation of the landmark model; runs in the build venv (``onnx`` + ``onnxruntime``).

``python quantize_landmarks.py --model pose_landmark_full.onnx --calibration calibration.npy --out X.int8.onnx``

QDQ format, int8 weights per output channel, uint8 activations, MinMax calibration over the crops in
``calibration.npy`` ((n, 1, 256, 256, 3) float32, made by :mod:`runtime.vision.pose_build.quantize`).
Prints one JSON line: the options used and the tool versions.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np


def head_convs(graph, depth: int) -> list[str]:
    """Names of the Conv nodes within ``depth`` Convs upstream of any graph output (the regression heads)."""
    prod = {o: n for n in graph.node for o in n.output}
    out: list[str] = []
    frontier = [(prod[o.name], 0) for o in graph.output if o.name in prod]
    seen = set()
    while frontier:
        node, k = frontier.pop()
        if node.name in seen:
            continue
        seen.add(node.name)
        if node.op_type == "Conv":
            k += 1
            if k > depth:
                continue
            out.append(node.name)
        frontier += [(prod[i], k) for i in node.input if i in prod]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--calibration", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--calibrate", choices=("MinMax", "Percentile", "Entropy"), default="MinMax")
    ap.add_argument("--exclude-depth", type=int, default=0,
                    help="keep in fp32 the Conv nodes within this many Convs of a graph output (0: none)")
    args = ap.parse_args(argv)

    import onnx
    import onnxruntime
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    crops = np.load(args.calibration)
    if crops.ndim != 5 or crops.shape[1:] != (1, 256, 256, 3) or crops.dtype != np.float32:
        print(f"error: --calibration: expected (n, 1, 256, 256, 3) float32, got {crops.shape} {crops.dtype}",
              file=sys.stderr)
        return 2
    model = onnx.load(str(args.model))
    in_name = model.graph.input[0].name
    excluded = head_convs(model.graph, args.exclude_depth)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(crops)

        def get_next(self):
            x = next(self._it, None)
            return None if x is None else {in_name: x}

    options = {"quant_format": "QDQ", "per_channel": True, "weight_type": "QInt8", "activation_type": "QUInt8",
               "calibrate_method": args.calibrate, "calibration_crops": int(crops.shape[0]),
               "fp32_nodes": len(excluded), "exclude_depth": args.exclude_depth}
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(args.model), str(pre), skip_symbolic_shape=True)
        quantize_static(str(pre), str(args.out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8,
                        calibrate_method=getattr(CalibrationMethod, args.calibrate), nodes_to_exclude=excluded)
    print(json.dumps({"options": options, "versions": {"onnxruntime": onnxruntime.__version__,
                                                       "onnx": onnx.__version__}}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
