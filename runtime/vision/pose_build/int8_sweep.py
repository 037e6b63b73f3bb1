"""``python -m runtime.vision.pose_build.int8_sweep [--nodes] [--slow]``: int8 recipes of the landmark model, measured.

The analysis behind the build's int8 verdict (not part of ``make pose-models``: minutes of CPU). In this
interpreter (project venv) the fp32 tracker finds the person and keeps each frame's 256×256 landmark crop and ROI:

* calibration: the build's ``CALIBRATION_FRAMES`` of the sports2d demo plus every 4th frame of pose2sim cam01..03;
* ``sensitivity`` (ranks blocks and nodes; never a gate set): the sports2d calibration crops;
* ``demo_eval`` (the gate: the build's ``EVAL_FRAMES``), ``demo_other`` (odd frames 41 + 6k, seen by nothing) and
  ``pose2sim_cam04`` (a camera the calibration never saw).

Then :mod:`runtime.vision.pose_build.int8_sweep_worker` (build venv) quantises each recipe from the build's
segmentation-free model and measures px error vs fp32 and CPU ms per call. Writes ``--out`` (JSON) and prints a table.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from runtime.vision.pose_build import DEFAULT_BUILD_VENV, DEFAULT_OUT, REPO, pruned_path

WORKER = Path(__file__).with_name("int8_sweep_worker.py")
DEMO_OTHER = tuple(range(41, 200, 6))
POSE2SIM_STEP = 4


def crops(model_dir: Path, video: Path, indices) -> tuple[np.ndarray, np.ndarray]:
    """(crops (n, 1, 256, 256, 3) float32, ROIs (n, 4) cx cy size rotation) where the fp32 tracker found someone."""
    from runtime.vision.frame_sources import read_video_frames
    from runtime.vision.pose_build.quantize import tracked_rois
    from runtime.vision.pose_onnx import LM_SIZE, OnnxPose, crop_tensor

    frames = read_video_frames(video, indices)
    rois = tracked_rois(OnnxPose(model_dir, provider="cpu", landmark_model="fp32"), frames)
    if not rois:
        raise ValueError(f"{video}: nobody found on frames {indices[0]}..{indices[-1]}")
    x = np.stack([crop_tensor(frames[i], r, LM_SIZE, 0.0, 1.0, replicate=True) for i, r in rois.items()])
    return x, np.array([[r.cx, r.cy, r.size, r.rotation] for r in rois.values()])


def sweep_data(model_dir: Path) -> dict[str, np.ndarray]:
    """The arrays of ``crops.npz`` (see the worker's docstring)."""
    import cv2

    from runtime.vision.footage import pose2sim_single_person, sports2d_demo_video
    from runtime.vision.pose_build import quantize as q

    demo = sports2d_demo_video()
    cams = pose2sim_single_person()["videos"]

    def every(v: Path) -> tuple[int, ...]:
        return tuple(range(0, int(cv2.VideoCapture(str(v)).get(cv2.CAP_PROP_FRAME_COUNT)), POSE2SIM_STEP))

    cal_x, cal_r = crops(model_dir, demo, q.CALIBRATION_FRAMES)
    data = {"sensitivity_x": cal_x, "sensitivity_roi": cal_r}
    data["calibration"] = np.concatenate([cal_x] + [crops(model_dir, v, every(v))[0] for v in cams[:3]])
    for name, video, idx in (("demo_eval", demo, q.EVAL_FRAMES), ("demo_other", demo, DEMO_OTHER),
                             ("pose2sim_cam04", cams[3], every(cams[3]))):
        data[f"{name}_x"], data[f"{name}_roi"] = crops(model_dir, video, idx)
    return data


def table(res: dict) -> list[str]:
    """One line per recipe: px median / p95 on each set, CPU ms, gate verdict."""
    rows = [f"fp32 (nosegm): cpu {res['fp32']['cpu_ms_p50']} ms per call (1 thread)"]
    for name, r in res.items():
        if isinstance(r, dict) and "px_vs_fp32" in r:
            px = "  ".join(f"{k} {v['median_px']:.2f}/{v['p95_px']:.2f}" for k, v in r["px_vs_fp32"].items())
            rows.append(f"{name:<34} {px}  cpu {r['cpu_ms_p50']} ms  {'PASS' if r['passes_gate'] else 'fail'}")
    rows += [f"{k}: sensitivity {v['sensitivity']['median_px']:.2f}/{v['sensitivity']['p95_px']:.2f} px"
             for k, v in res.get("block_sensitivity", {}).items()]
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m runtime.vision.pose_build.int8_sweep", description=__doc__.split("\n")[0])
    ap.add_argument("--models", type=Path, default=DEFAULT_OUT, help="built models (default build/pose_onnx)")
    ap.add_argument("--venv", type=Path, default=DEFAULT_BUILD_VENV, help="build venv (has onnx)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT / "int8_sweep.json")
    ap.add_argument("--nodes", action="store_true", help="per-node sensitivity + greedy node sets (~10 min)")
    ap.add_argument("--slow", action="store_true", help="Percentile and Entropy calibration too (~4 min)")
    args = ap.parse_args(argv)
    py = args.venv / "bin" / "python"
    if not py.exists():
        print(f"error: --venv: {py} missing; run `make pose-models` first", file=sys.stderr)
        return 2
    model = pruned_path(args.models)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "crops.npz"
        np.savez(data, **sweep_data(args.models))
        env = dict(os.environ, PYTHONPATH=str(REPO), CUDA_VISIBLE_DEVICES="")
        cmd = [str(py), str(WORKER), "--model", str(model), "--data", str(data), "--out", str(args.out)]
        subprocess.run(cmd + ["--nodes"] * args.nodes + ["--slow"] * args.slow, check=True, env=env)
    print("\n".join(table(json.loads(args.out.read_text()))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
