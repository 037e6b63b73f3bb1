"""The int8 landmark model: static quantisation calibrated on the demo footage, and its acceptance test.

Run by the build step (:mod:`runtime.vision.pose_build.__main__`) after the fp32 conversion:

1. **Calibration crops** (this interpreter, the project venv): the fp32 ONNX pipeline tracks the person in
   ``CALIBRATION_FRAMES`` of the ``sports2d`` demo (1768×994) and keeps the 256×256 ROI crop each frame's
   landmark model saw (float32 0..1, exactly the runtime's input) → ``calibration.npy`` (temporary).
2. **Quantisation** (the build venv, which has ``onnx``): ``quantize_landmarks.py`` runs
   ``onnxruntime.quantization.quantize_static`` (QDQ, int8 weights per channel, uint8 activations,
   MinMax calibration over those crops) → ``pose_landmark_full.int8.onnx``.
3. **Agreement** (this interpreter): int8 and fp32 landmark models on the same ROIs of ``EVAL_FRAMES``
   (frames the calibration did not see), the 33 landmarks' full-frame pixel distance after heatmap
   refinement and projection; median and p95 over all landmarks × frames. Accepted when median ≤
   ``MAX_MEDIAN_PX`` (1 px) and p95 ≤ ``MAX_P95_PX`` (3 px); otherwise fp32 stays the runtime's model and the
   manifest says why, with the figures.

The int8 model is quantised from the segmentation-free fp32 model (``pose_landmark_full.nosegm.onnx``) when the
build accepted it (same numbers on the outputs used), else from the full one.

Recipes measured (``python -m runtime.vision.pose_build.int8_sweep --nodes``, onnxruntime 1.32; calibration: the
46 sports2d calibration crops + 75 pose2sim crops of cam01..03; px median / p95 vs fp32 on the gate frames
``EVAL_FRAMES`` (32 crops), then on sports2d frames 41 + 6k and pose2sim cam04 (never seen); CPU ms per call,
one thread, fp32 segmentation-free 8.9 ms): all Convs int8, MinMax: 2.65 / 26.5 px (2.64 / 24.3, 6.40 / 31.0),
4.7 ms; QOperator: 2.64 / 33.6 px, 5.1 ms; int8 symmetric activations: 3.70 / 44.7 px, 12.2 ms; the 5 head Convs
fp32 (the build's recipe, ``QUANTIZE_ARGS``): 2.62 / 28.0 px, 5.2 ms; all int8, Percentile 99.999: 2.68 / 27.0 px;
heads fp32, Entropy: 2.62 / 28.0 px (as MinMax) (``--slow``). Per-block sensitivity (12 blocks of 7 Convs, one block int8,
measured on the calibration crops): every block alone exceeds 3 px p95 (4.1 .. 111 px; the stem and the
regression head the worst). Mixed precision from the per-Conv sensitivity ranking (one Conv int8 at a time): the
8 least sensitive of 83 Convs int8 pass (0.13 / 1.84 px; 0.12 / 1.63, 0.32 / 1.62 px unseen) but take 9.4 ms
(no faster: the Q/DQ pairs cost what the int8 Convs save); 17 Convs already fail (0.49 / 4.38 px). No int8
recipe is both within 1 / 3 px and faster: fp32 (segmentation-free) stays the runtime's model.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

#: Demo frames whose crops calibrate the quantiser (50: the person walks through the whole scene).
CALIBRATION_FRAMES: tuple[int, ...] = tuple(range(40, 240, 4))
#: Demo frames of the agreement check (interleaved with, never equal to, the calibration frames).
EVAL_FRAMES: tuple[int, ...] = tuple(range(42, 200, 4))
MAX_MEDIAN_PX = 1.0
MAX_P95_PX = 3.0
INT8_FILE = "pose_landmark_full.int8.onnx"


def demo_frames(indices: tuple[int, ...]) -> dict[int, np.ndarray]:
    """RGB frames ``indices`` of the sports2d demo video (footage cache); FootageUnavailable when absent."""
    from runtime.vision.footage import sports2d_demo_video
    from runtime.vision.frame_sources import read_video_frames

    out = read_video_frames(sports2d_demo_video(), indices)
    if not out:
        raise ValueError("sports2d demo: no frame could be read")
    return out


def tracked_rois(pose, frames: dict[int, np.ndarray]) -> dict[int, object]:
    """The landmark ROI (:class:`runtime.vision.pose_anchors.Roi`) the backend used on each frame it found someone."""
    pose.reset()
    rois = {}
    for i in sorted(frames):
        r = pose.infer(frames[i], 0)
        if r is not None:
            rois[i] = r.extras["roi"]
    return rois


def calibration_crops(model_dir: Path, frames: dict[int, np.ndarray]) -> np.ndarray:
    """(n, 1, 256, 256, 3) float32: the landmark model's input on each calibration frame (fp32 tracking)."""
    from runtime.vision.pose_onnx import LM_SIZE, OnnxPose, crop_tensor

    pose = OnnxPose(model_dir, provider="cpu", landmark_model="fp32")
    rois = tracked_rois(pose, frames)
    if len(rois) < 10:
        raise ValueError(f"calibration: the person was found on only {len(rois)} of {len(frames)} frames")
    return np.stack([crop_tensor(frames[i], roi, LM_SIZE, 0.0, 1.0, replicate=True) for i, roi in rois.items()])


def agreement(model_dir: Path, int8_file: Path, frames: dict[int, np.ndarray]) -> dict[str, float]:
    """``int8_file``'s (any landmark-model variant) vs fp32 landmarks (33 points, full-frame px) on the fp32
    tracker's ROIs of ``frames``.

    Returns ``median_px``, ``p95_px``, ``max_px`` over landmarks × frames, ``frames`` compared and
    ``score_max_abs`` (pose flag).
    """
    import onnxruntime as ort

    from runtime.vision.pose_onnx import (LM_SIZE, OnnxPose, crop_tensor, decode_landmarks, landmark_session_runner,
                                          session_options)
    from runtime.vision.pose_types import N_LANDMARKS

    fp32 = OnnxPose(model_dir, provider="cpu", landmark_model="fp32")
    sess = ort.InferenceSession(str(int8_file), sess_options=session_options(), providers=["CPUExecutionProvider"])
    run = landmark_session_runner(sess)
    rois = tracked_rois(fp32, frames)
    if not rois:
        raise ValueError("agreement: the fp32 model found nobody on the evaluation frames")
    dists, score = [], 0.0
    for i, roi in rois.items():
        x = crop_tensor(frames[i], roi, LM_SIZE, 0.0, 1.0, replicate=True)
        a = fp32.landmarks(frames[i], roi)
        b = decode_landmarks(run(x), roi)
        dists.append(np.linalg.norm(a["xy"][:N_LANDMARKS] - b["xy"][:N_LANDMARKS], axis=1))
        score = max(score, abs(float(a["score"]) - float(b["score"])))
    d = np.concatenate(dists)
    return {"median_px": float(np.median(d)), "p95_px": float(np.percentile(d, 95)), "max_px": float(d.max()),
            "frames": len(rois), "score_max_abs": score}


def accepted(figures: dict[str, float]) -> tuple[bool, str]:
    """(accepted, reason) for the agreement ``figures`` against the 1 px median / 3 px p95 limits."""
    ok = figures["median_px"] <= MAX_MEDIAN_PX and figures["p95_px"] <= MAX_P95_PX
    text = (f"int8 vs fp32 on {figures['frames']} demo frames: median {figures['median_px']:.3f} px "
            f"(limit {MAX_MEDIAN_PX}), p95 {figures['p95_px']:.3f} px (limit {MAX_P95_PX})")
    return ok, ("accepted: " if ok else "not accepted, fp32 stays the default: ") + text
