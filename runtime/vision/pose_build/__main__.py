"""``python -m runtime.vision.pose_build --out build/pose_onnx``: build the BlazePose ONNX models.

1. Creates the build venv (python3.11, ``requirements.lock``: tensorflow-cpu + tf2onnx) if missing.
2. Runs ``convert_tflite.py`` in it for each bundled model: densify sparse weights, check the
   densified model against the original, tf2onnx at opset :data:`~runtime.vision.pose_build.OPSET`.
3. In THIS interpreter (the project venv: onnxruntime + ai-edge-litert) checks each ONNX model
   against the original ``.tflite`` on fixed random inputs and records the max abs difference.
4. The segmentation-free landmark model (:mod:`runtime.vision.pose_build.prune_outputs`, build venv): the
   converted model without its unused segmentation output and the nodes only it needed; its four outputs
   checked against the full model's on fixed random inputs (max abs difference ≤ ``PRUNED_MAX_ABS_DIFF``) and,
   with the footage, its landmarks on the demo frames; recorded under ``pose_landmark_full_nosegm``.
5. The int8 landmark model (:mod:`runtime.vision.pose_build.quantize`): calibration crops from the demo
   footage (this interpreter), ``quantize_landmarks.py`` in the build venv, the int8-vs-fp32 agreement on
   other demo frames (this interpreter); recorded under ``quantized`` with its SHA-256 and whether it is
   accepted. Without the footage the step is skipped with the reason (fp32 only).
6. Writes ``manifest.json`` (source/densified/ONNX SHA-256, tool versions, opset, check results).

Exit 0 on success, 2 on bad arguments, 1 on a failed step (message on stderr).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

from runtime.vision.pose_build import (DEFAULT_BUILD_VENV, DEFAULT_OUT, OPSET, PRUNED_DROPS, PRUNED_NAME,
                                       QUANTIZED_NAME, REQUIREMENTS_LOCK, SOURCE_MODELS, bundled_tflite, sha256)

CONVERT_SCRIPT = Path(__file__).with_name("convert_tflite.py")
QUANTIZE_SCRIPT = Path(__file__).with_name("quantize_landmarks.py")
PRUNE_SCRIPT = Path(__file__).with_name("prune_outputs.py")
PRUNED_FILE = "pose_landmark_full.nosegm.onnx"
#: Largest |pruned - full| accepted on any kept output (the kept nodes are unchanged: expected 0).
PRUNED_MAX_ABS_DIFF = 1e-6
#: The quantisation recipe (the best of those tried, see the module docstring of ``quantize``).
QUANTIZE_ARGS = ("--calibrate", "MinMax", "--exclude-depth", "1")
#: Outputs compared ONNX vs TFLite in the build check (the segmentation mask is not used by the runtime).
CHECKED_OUTPUTS = {"pose_detection": ("Identity", "Identity_1"),
                   "pose_landmark_full": ("Identity", "Identity_1", "Identity_3", "Identity_4")}


def _log(msg: str) -> None:
    print(f"[pose_build] {msg}", file=sys.stderr, flush=True)


def ensure_build_venv(venv: Path, python: str) -> Path:
    """The build venv's python, creating the venv from ``requirements.lock`` when missing."""
    py = venv / "bin" / "python"
    stamp = venv / ".requirements.sha256"
    want = sha256(REQUIREMENTS_LOCK)
    if py.exists() and stamp.exists() and stamp.read_text().strip() == want:
        return py
    if shutil.which(python) is None and not Path(python).exists():
        raise FileNotFoundError(f"--python: {python!r} not found (the build venv needs Python 3.11)")
    t0 = time.monotonic()
    if py.exists() and stamp.exists():   # the lock changed: bring the existing venv to it
        _log(f"updating build venv {venv} to {REQUIREMENTS_LOCK.name}")
    else:
        _log(f"creating build venv {venv} with {python}")
        subprocess.run([python, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", "-r", str(REQUIREMENTS_LOCK)], check=True)
    stamp.write_text(want + "\n")
    _log(f"build venv ready in {time.monotonic() - t0:.0f} s")
    return py


def _convert(py: Path, src: Path, out: Path, name: str, opset: int) -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([str(py), str(CONVERT_SCRIPT), "--src", str(src), "--out-dir", str(out), "--name", name,
                           "--opset", str(opset)], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"conversion of {name} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def check_against_tflite(name: str, tflite: Path, onnx_file: Path, n_inputs: int = 3) -> dict[str, float]:
    """Max abs difference per output, ONNX Runtime (CPU) vs ai-edge-litert, on fixed random inputs."""
    import numpy as np
    import onnxruntime as ort
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(tflite))
    interp.allocate_tensors()
    d_in = interp.get_input_details()[0]
    by_name = {d["name"]: d["index"] for d in interp.get_output_details()}
    sess = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    in_name = sess.get_inputs()[0].name
    out_names = [o.name for o in sess.get_outputs()]
    low = -1.0 if name == "pose_detection" else 0.0  # the models' input ranges
    rng = np.random.default_rng(20250601)
    worst = {k: 0.0 for k in CHECKED_OUTPUTS[name]}
    for _ in range(n_inputs):
        x = rng.uniform(low, 1.0, size=tuple(d_in["shape"])).astype(np.float32)
        interp.set_tensor(d_in["index"], x)
        interp.invoke()
        got = dict(zip(out_names, sess.run(None, {in_name: x})))
        for k in worst:
            worst[k] = max(worst[k], float(np.max(np.abs(got[k] - interp.get_tensor(by_name[k])))))
    return worst


def outputs_vs_full(full: Path, other: Path, n_inputs: int = 3) -> dict[str, float]:
    """Max abs difference per output ``other`` has, ``other`` vs ``full`` (CPU), on fixed random 0..1 inputs."""
    import numpy as np
    import onnxruntime as ort

    a = ort.InferenceSession(str(full), providers=["CPUExecutionProvider"])
    b = ort.InferenceSession(str(other), providers=["CPUExecutionProvider"])
    names = [o.name for o in b.get_outputs()]
    in_name = a.get_inputs()[0].name
    rng = np.random.default_rng(20261207)
    worst = {k: 0.0 for k in names}
    for _ in range(n_inputs):
        x = rng.uniform(0.0, 1.0, size=(1, 256, 256, 3)).astype(np.float32)
        for k, ya, yb in zip(names, a.run(names, {in_name: x}), b.run(names, {in_name: x})):
            worst[k] = max(worst[k], float(np.max(np.abs(ya - yb))))
    return worst


def build_pruned(py: Path, out: Path) -> dict:
    """The ``pose_landmark_full_nosegm`` manifest entry: the landmark model without its segmentation output."""
    from runtime.vision.footage import FootageUnavailable
    from runtime.vision.pose_build import quantize as q

    t0 = time.monotonic()
    full, pruned = out / "pose_landmark_full.onnx", out / PRUNED_FILE
    proc = subprocess.run([str(py), str(PRUNE_SCRIPT), "--model", str(full), "--out", str(pruned),
                           *[a for d in PRUNED_DROPS for a in ("--drop", d)]], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"pruning the landmark model failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    rec = json.loads(proc.stdout.strip().splitlines()[-1])
    diffs = outputs_vs_full(full, pruned)
    ok = max(diffs.values()) <= PRUNED_MAX_ABS_DIFF
    entry = {"onnx": pruned.name, "onnx_sha256": sha256(pruned), "from": full.name, **rec,
             "random_input_max_abs_diff_vs_full": diffs, "max_abs_diff_limit": PRUNED_MAX_ABS_DIFF}
    try:
        figures = q.agreement(out, pruned, q.demo_frames(q.EVAL_FRAMES))
        ok_px, _ = q.accepted(figures)
        entry["agreement_vs_fp32"] = figures
        ok = ok and ok_px
    except (FootageUnavailable, OSError, ValueError) as exc:
        entry["agreement_vs_fp32"] = f"not measured: no demo footage ({exc})"
    entry.update(accepted=ok, seconds=round(time.monotonic() - t0, 1))
    _log(f"{PRUNED_FILE}: {rec['nodes_before']} -> {rec['nodes_after']} nodes, max |pruned - full| "
         f"{max(diffs.values()):.1e}: {'accepted' if ok else 'NOT accepted'}")
    return entry


def build_int8(py: Path, out: Path, source: Path) -> dict:
    """The ``quantized`` manifest section: the int8 landmark model (quantised from ``source``, the fp32 landmark
    model file) and its agreement with fp32, or why skipped."""
    import numpy as np

    from runtime.vision.footage import FootageUnavailable
    from runtime.vision.pose_build import quantize as q

    t0 = time.monotonic()
    try:
        calib_frames = q.demo_frames(q.CALIBRATION_FRAMES)
        eval_frames = q.demo_frames(q.EVAL_FRAMES)
    except (FootageUnavailable, OSError, ValueError) as exc:
        _log(f"int8 landmark model skipped: no demo footage ({exc})")
        return {"skipped": f"no demo footage to calibrate on: {exc}"}
    crops = q.calibration_crops(out, calib_frames)
    calib = out / "calibration.npy"
    np.save(calib, crops)
    int8 = out / q.INT8_FILE
    try:
        env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
        proc = subprocess.run([str(py), str(QUANTIZE_SCRIPT), "--model", str(source),
                               "--calibration", str(calib), "--out", str(int8), *QUANTIZE_ARGS],
                              capture_output=True, text=True, env=env)
    finally:
        calib.unlink(missing_ok=True)
    if proc.returncode != 0:
        raise RuntimeError(f"int8 quantisation failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    rec = json.loads(proc.stdout.strip().splitlines()[-1])
    figures = q.agreement(out, int8, eval_frames)
    ok, reason = q.accepted(figures)
    _log(f"int8 landmark model: {reason}")
    entry = {"onnx": int8.name, "onnx_sha256": sha256(int8), "from": source.name,
             "quantization": rec["options"], "tools": rec["versions"],
             "calibration_frames": [int(i) for i in q.CALIBRATION_FRAMES], "eval_frames": [int(i) for i in q.EVAL_FRAMES],
             "agreement_vs_fp32": figures, "limits_px": {"median": q.MAX_MEDIAN_PX, "p95": q.MAX_P95_PX},
             "accepted": ok, "reason": reason, "seconds": round(time.monotonic() - t0, 1)}
    return {QUANTIZED_NAME: entry,
            "fp16": "not built: fp16 only where a GPU runs it (TensorRT's own fp16, trt_fp16); none on this build"}


def build(out: Path, venv: Path, python: str, opset: int = OPSET) -> dict:
    """Build both models into ``out`` and return the manifest (also written to ``out/manifest.json``)."""
    t0 = time.monotonic()
    py = ensure_build_venv(venv, python)
    t_venv = time.monotonic() - t0
    out.mkdir(parents=True, exist_ok=True)
    models: dict[str, dict] = {}
    versions: dict[str, str] = {}
    for name in SOURCE_MODELS:
        src = bundled_tflite(name)
        _log(f"converting {name} ({src})")
        rec = _convert(py, src, out, name, opset)
        versions = rec["versions"]
        onnx_file = out / f"{name}.onnx"
        dense = out / f"{name}.dense.tflite"
        diffs = check_against_tflite(name, src, onnx_file)
        _log(f"{name}: max |onnx - tflite| on random inputs: " + ", ".join(f"{k} {v:.2e}" for k, v in diffs.items()))
        models[name] = {
            "source_tflite": str(src), "source_sha256": sha256(src),
            "densified_tflite": dense.name, "densified_sha256": sha256(dense),
            "densified_ops": len(rec["densified_ops"]), "densified_vs_source_max_abs_diff": rec["densified_max_abs_diff"],
            "onnx": onnx_file.name, "onnx_sha256": sha256(onnx_file),
            "inputs": rec["onnx_inputs"], "outputs": rec["onnx_outputs"],
            "random_input_max_abs_diff_vs_tflite": diffs,
        }
    import ai_edge_litert
    import onnxruntime

    manifest = {
        "format": 1,
        "opset": opset,
        "build_tools": versions,
        "check_tools": {"onnxruntime": onnxruntime.__version__,
                        "ai_edge_litert": getattr(ai_edge_litert, "__version__", "unknown")},
        "requirements_lock_sha256": sha256(REQUIREMENTS_LOCK),
        "platform": platform.platform(),
        "build_seconds": {"venv": round(t_venv, 1), "total": round(time.monotonic() - t0, 1)},
        "models": models,
    }
    _write_manifest(out, manifest)   # the fp32 models first: the later steps load them through the manifest
    manifest[PRUNED_NAME] = build_pruned(py, out)
    _write_manifest(out, manifest)
    source = out / (PRUNED_FILE if manifest[PRUNED_NAME]["accepted"] else "pose_landmark_full.onnx")
    manifest["quantized"] = build_int8(py, out, source)
    manifest["build_seconds"]["total"] = round(time.monotonic() - t0, 1)
    _write_manifest(out, manifest)
    return manifest


def _write_manifest(out: Path, manifest: dict) -> None:
    tmp = out / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    tmp.replace(out / "manifest.json")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m runtime.vision.pose_build", description="Build BlazePose ONNX models.")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default build/pose_onnx)")
    ap.add_argument("--venv", type=Path, default=DEFAULT_BUILD_VENV, help="build venv (default build/.venv-pose-build)")
    ap.add_argument("--python", default="python3.11", help="interpreter for the build venv (Python 3.11)")
    ap.add_argument("--opset", type=int, default=OPSET, help=f"ONNX opset (default {OPSET})")
    args = ap.parse_args(argv)
    if not 13 <= args.opset <= 21:
        print(f"error: --opset: {args.opset} outside 13..21", file=sys.stderr)
        return 2
    try:
        manifest = build(args.out, args.venv, args.python, args.opset)
    except (OSError, RuntimeError, ValueError, subprocess.CalledProcessError) as exc:
        print(f"error: pose build failed: {exc}", file=sys.stderr)
        return 1
    _log(f"wrote {args.out / 'manifest.json'} in {manifest['build_seconds']['total']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
