"""int8 recipes for the landmark model and their px error vs fp32; runs in the build venv (``onnx``), started by
:mod:`runtime.vision.pose_build.int8_sweep` (which makes the crops).

``python int8_sweep_worker.py --model M.onnx --data crops.npz --out sweep.json [--nodes] [--slow]``

``crops.npz``: ``calibration`` (n, 1, 256, 256, 3) float32 and, per evaluation set ``S``, ``S_x`` (crops) and
``S_roi`` (m, 4: cx, cy, size, rotation of each crop's ROI, full-frame px / rad). Each recipe is quantised
(QDQ, int8 per-channel weights unless stated), its landmarks compared with ``M``'s on every set (33 landmarks,
full-frame px after heatmap refinement: the runtime's decoding) and its CPU time per call measured (one
thread, ``time.thread_time``, median). The sensitivity of a block or node is measured on the
``sensitivity`` set (never a gate set). Writes ``sweep.json``; prints one line per recipe to stderr.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

N_BLOCKS = 12
GREEDY_SIZES = (8, 17, 26, 40)


class Sweep:
    """Quantisation and evaluation of recipes of one model over fixed crops."""

    def __init__(self, model: Path, data: dict[str, np.ndarray], tmp: Path) -> None:
        from onnxruntime.quantization.shape_inference import quant_pre_process

        from runtime.vision.pose_anchors import Roi

        self.tmp, self.model = tmp, model
        self.pre = tmp / "pre.onnx"
        quant_pre_process(str(model), str(self.pre), skip_symbolic_shape=True)
        self.calibration = data["calibration"]
        self.sets = {k[:-2]: (data[k], [Roi(*map(float, r)) for r in data[k[:-2] + "_roi"]])
                     for k in data if k.endswith("_x")}
        self.ref = {k: self.outputs(model, x) for k, (x, _) in self.sets.items()}
        self.input_name = self.session(model).get_inputs()[0].name

    @staticmethod
    def session(path: Path, threads: int = 2):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads, so.log_severity_level = threads, 1, 3
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])

    def outputs(self, path: Path, crops: np.ndarray) -> list:
        from runtime.vision.pose_onnx import landmark_session_runner

        run = landmark_session_runner(self.session(path))
        return [run(x) for x in crops]

    def px(self, path: Path, sets) -> dict[str, dict[str, float]]:
        from runtime.vision.pose_onnx import decode_landmarks

        out = {}
        for k in sets:
            crops, rois = self.sets[k]
            got = self.outputs(path, crops)
            d = np.concatenate([np.linalg.norm(decode_landmarks(a, r)["xy"][:33] - decode_landmarks(b, r)["xy"][:33],
                                               axis=1) for a, b, r in zip(self.ref[k], got, rois)])
            out[k] = {"median_px": round(float(np.median(d)), 3), "p95_px": round(float(np.percentile(d, 95)), 3)}
        return out

    def cpu_ms(self, path: Path, calls: int = 40) -> float:
        from runtime.vision.pose_onnx import landmark_session_runner

        run = landmark_session_runner(self.session(path, threads=1))
        crops = next(iter(self.sets.values()))[0]
        for x in crops[:3]:
            run(x)
        t = []
        for k in range(calls):
            c0 = time.thread_time()
            run(crops[k % len(crops)])
            t.append(time.thread_time() - c0)
        return round(float(np.median(t)) * 1e3, 2)

    def quantize(self, out: Path, method: str = "MinMax", include=None, exclude=(), fmt: str = "QDQ",
                 symmetric_activations: bool = False) -> float:
        """Quantise (calibration ranges cached per method) → seconds taken."""
        from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                              quantize_static)

        cache = self.tmp / f"ranges_{method}.json"
        crops, name = self.calibration, self.input_name

        class Reader(CalibrationDataReader):
            def __init__(self) -> None:
                self._it = iter(crops)

            def get_next(self):
                x = next(self._it, None)
                return None if x is None else {name: x}

        t0 = time.monotonic()
        quantize_static(str(self.pre), str(out), None if cache.exists() else Reader(),
                        quant_format=getattr(QuantFormat, fmt), per_channel=True, weight_type=QuantType.QInt8,
                        activation_type=QuantType.QInt8 if symmetric_activations else QuantType.QUInt8,
                        calibrate_method=getattr(CalibrationMethod, method), nodes_to_quantize=include,
                        nodes_to_exclude=list(exclude), calibration_cache_path=str(cache),
                        extra_options={"ActivationSymmetric": True} if symmetric_activations else {})
        return round(time.monotonic() - t0, 1)

    def convs(self) -> tuple[list[str], list[str]]:
        import onnx

        g = onnx.load(str(self.pre)).graph
        return [n.name for n in g.node if n.op_type == "Conv"], [n.name for n in g.node]


def _record(sweep: Sweep, results: dict, name: str, gate: str, **kw) -> None:
    out = sweep.tmp / "q.onnx"
    secs = sweep.quantize(out, **kw)
    px = sweep.px(out, list(sweep.sets))
    g = px[gate]
    results[name] = {"quantize_s": secs, "px_vs_fp32": px, "cpu_ms_p50": sweep.cpu_ms(out),
                     "passes_gate": g["median_px"] <= 1.0 and g["p95_px"] <= 3.0}
    print(f"{name:<34} {json.dumps(px)} cpu {results[name]['cpu_ms_p50']} ms", file=sys.stderr, flush=True)


def run_sweep(sweep: Sweep, gate: str, nodes: bool, slow: bool) -> dict:
    """Whole-model recipes, per-block sensitivity, optionally per-node sensitivity and greedy node sets."""
    import onnx

    from runtime.vision.pose_build.quantize_landmarks import head_convs

    heads = head_convs(onnx.load(str(sweep.pre)).graph, 1)
    res: dict = {"fp32": {"cpu_ms_p50": sweep.cpu_ms(sweep.model)}}
    recipes = {"all, MinMax": {}, "all, QOperator": {"fmt": "QOperator"},
               "all, int8 symmetric activations": {"symmetric_activations": True},
               "heads fp32, MinMax": {"exclude": heads}}
    if slow:
        recipes |= {"all, Percentile 99.999": {"method": "Percentile"}, "heads fp32, Entropy": {"method": "Entropy",
                                                                                                "exclude": heads}}
    for name, kw in recipes.items():
        _record(sweep, res, name, gate, **kw)
    convs, order = sweep.convs()
    per = -(-len(convs) // N_BLOCKS)
    blocks = [convs[i:i + per] for i in range(0, len(convs), per)]
    sens = {}
    for k, blk in enumerate(blocks):   # one block int8 (its convs and the nodes between them), the rest fp32
        inc = order[order.index(blk[0]):order.index(blk[-1]) + 1]
        sweep.quantize(sweep.tmp / "q.onnx", include=inc)
        sens[f"block {k} (convs {k * per}..{k * per + len(blk) - 1})"] = sweep.px(sweep.tmp / "q.onnx", ["sensitivity"])
    res["block_sensitivity"] = sens
    if nodes:
        node_p95 = {}
        for c in convs:
            sweep.quantize(sweep.tmp / "q.onnx", include=[c])
            node_p95[c] = sweep.px(sweep.tmp / "q.onnx", ["sensitivity"])["sensitivity"]["p95_px"]
        ranked = sorted(convs, key=lambda c: node_p95[c])
        res["node_sensitivity_p95_px"] = node_p95
        for n in GREEDY_SIZES:   # the n least sensitive convs int8
            _record(sweep, res, f"least sensitive {n} of {len(convs)} convs", gate, include=ranked[:n])
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--gate", default="demo_eval", help="evaluation set of the 1 px / 3 px gate")
    ap.add_argument("--nodes", action="store_true", help="per-node sensitivity and greedy node sets (minutes)")
    ap.add_argument("--slow", action="store_true", help="also Percentile and Entropy calibration (minutes)")
    args = ap.parse_args(argv)
    data = dict(np.load(args.data))
    if "calibration" not in data or f"{args.gate}_x" not in data or "sensitivity_x" not in data:
        print(f"error: --data: needs calibration, sensitivity_x and {args.gate}_x; has {sorted(data)}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        res = run_sweep(Sweep(args.model, data, Path(tmp)), args.gate, args.nodes, args.slow)
    args.out.write_text(json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
