"""BlazePose (full) on the original bundled ``.tflite`` files through ai-edge-litert: the numerical reference.

Same pre/post-processing as :class:`runtime.vision.pose_onnx.OnnxPose` (both are
:class:`~runtime.vision.pose_onnx.BlazePoseTracker`), so ONNX-vs-TFLite differences are the models' alone.
The ``.tflite`` files are mediapipe's own (``pose_detection.tflite`` with its sparse weights, run as is).
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np

from runtime.vision.pose_onnx import BlazePoseTracker, Runner

log = logging.getLogger(__name__)


def litert_runner(path: Path, threads: int = 0) -> Runner:
    """A runner for one ``.tflite`` model: NHWC float32 → outputs in the model's output order (copies)."""
    from ai_edge_litert.interpreter import Interpreter

    if threads < 0:
        raise ValueError(f"threads: must be >= 0, got {threads}")
    interp = Interpreter(model_path=str(path), num_threads=threads or None)
    interp.allocate_tensors()
    d_in = interp.get_input_details()[0]
    outs = [d["index"] for d in sorted(interp.get_output_details(), key=lambda d: d["name"])]
    shape = tuple(int(s) for s in d_in["shape"])

    def run(x: np.ndarray) -> list[np.ndarray]:
        if x.shape != shape or x.dtype != np.float32:
            raise ValueError(f"{Path(path).name} input: expected {shape} float32, got {x.shape} {x.dtype}")
        interp.set_tensor(d_in["index"], x)
        interp.invoke()
        return [interp.get_tensor(i).copy() for i in outs]

    return run


class LiteRtPose(BlazePoseTracker):
    """The reference backend: mediapipe's bundled ``.tflite`` models run by ai-edge-litert (XNNPACK, CPU)."""

    def __init__(self, threads: int = 0, min_detection_confidence: float = 0.5,
                 min_tracking_confidence: float = 0.5) -> None:
        from runtime.vision.pose_build import bundled_tflite, sha256

        self.paths = {n: bundled_tflite(n) for n in ("pose_detection", "pose_landmark_full")}
        self.model_sha256 = {n: sha256(p) for n, p in self.paths.items()}
        log.info("pose litert: %s", "; ".join(f"{n} sha256={h}" for n, h in self.model_sha256.items()))
        super().__init__(litert_runner(self.paths["pose_detection"], threads),
                         litert_runner(self.paths["pose_landmark_full"], threads), name="litert",
                         min_detection_confidence=min_detection_confidence,
                         min_tracking_confidence=min_tracking_confidence)


# -- agreement ONNX vs TFLite ---------------------------------------------------------------------

def tensor_agreement(onnx: BlazePoseTracker, ref: BlazePoseTracker, frame_rgb: np.ndarray) -> dict[str, float] | None:
    """Max abs differences of the two backends' raw outputs for IDENTICAL input tensors from one frame.

    The reference's detector picks the ROI; both landmark models get the same 256×256 crop and both
    detectors the same 224×224 letterboxed frame. Returns None when the reference finds nobody.
    Keys: ``det_boxes`` and ``det_scores`` (detector tensor pixels / logits), ``landmarks_px`` (x, y of the
    39 landmarks, landmark-tensor pixels of 256), ``landmarks_z``, ``visibility_logit``, ``presence_logit``,
    ``score``, ``world_m`` (metres), ``heatmap_logit``.
    """
    from runtime.vision.pose_anchors import letterbox_roi
    from runtime.vision.pose_onnx import DET_SIZE, LM_SIZE, crop_tensor

    h, w = frame_rgb.shape[:2]
    x_det = crop_tensor(frame_rgb, letterbox_roi(w, h), DET_SIZE, -1.0, 1.0, replicate=False)
    a, b = onnx.detector_runner(x_det), ref.detector_runner(x_det)
    found = ref.detect(frame_rgb)
    if not found:
        return None
    x_lm = crop_tensor(frame_rgb, found[0][1], LM_SIZE, 0.0, 1.0, replicate=True)
    la, lb = onnx.landmark_runner(x_lm), ref.landmark_runner(x_lm)
    ta, tb = np.asarray(la[0]).reshape(39, 5), np.asarray(lb[0]).reshape(39, 5)
    d = np.abs(ta - tb)
    return {"det_boxes": float(np.max(np.abs(a[0] - b[0]))), "det_scores": float(np.max(np.abs(a[1] - b[1]))),
            "landmarks_px": float(d[:, :2].max()), "landmarks_z": float(d[:, 2].max()),
            "visibility_logit": float(d[:, 3].max()), "presence_logit": float(d[:, 4].max()),
            "score": float(np.max(np.abs(la[1] - lb[1]))), "heatmap_logit": float(np.max(np.abs(la[3] - lb[3]))),
            "world_m": float(np.max(np.abs(la[4] - lb[4])))}


def pose_agreement(onnx: BlazePoseTracker, ref: BlazePoseTracker, frame_rgb: np.ndarray) -> dict[str, float] | None:
    """Final-output differences, each backend running its whole pipeline (detector each frame) on one frame.

    Keys: ``xy_px_max`` / ``xy_px_median`` (33 landmarks, full-frame pixels), ``world_m_max``, ``visibility_max``,
    ``score``. None when either backend finds nobody (``found`` is then reported by the caller).
    """
    onnx.reset()
    ref.reset()
    ra, rb = onnx.infer(frame_rgb, 0), ref.infer(frame_rgb, 0)
    if ra is None or rb is None:
        return None
    dist = np.linalg.norm(ra.image_xy - rb.image_xy, axis=1)
    return {"xy_px_max": float(dist.max()), "xy_px_median": float(np.median(dist)),
            "world_m_max": float(np.max(np.abs(ra.world_xyz - rb.world_xyz))),
            "visibility_max": float(np.max(np.abs(ra.visibility - rb.visibility))),
            "score": abs(ra.score - rb.score)}


def _video_frames(path: Path, step: int):
    import cv2

    cap = cv2.VideoCapture(str(path))
    i = 0
    try:
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            if i % step == 0:
                yield i, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            i += 1
    finally:
        cap.release()


def main(argv: list[str] | None = None) -> int:
    """``python -m runtime.vision.pose_litert [--video F] [--step N]``: ONNX-vs-TFLite agreement table (JSON)."""
    import argparse
    import json

    from runtime.vision.pose_onnx import OnnxPose

    ap = argparse.ArgumentParser(description="BlazePose ONNX (CPU) vs TFLite (ai-edge-litert) agreement on a video")
    ap.add_argument("--video", type=Path, default=None, help="video file (default: the sports2d demo)")
    ap.add_argument("--step", type=int, default=1, help="use every N-th frame (default 1)")
    args = ap.parse_args(argv)
    if args.step < 1:
        print(f"error: --step: must be >= 1, got {args.step}", file=sys.stderr)
        return 2
    if args.video is None:
        from runtime.vision.footage import sports2d_demo_video

        args.video = sports2d_demo_video()
    if not args.video.is_file():
        print(f"error: --video: no such file {args.video}", file=sys.stderr)
        return 2
    onnx, ref = OnnxPose(provider="cpu"), LiteRtPose()
    tens: list[dict] = []
    final: list[dict] = []
    n = both = only_one = 0
    for _i, frame in _video_frames(args.video, args.step):
        n += 1
        t = tensor_agreement(onnx, ref, frame)
        if t is not None:
            tens.append(t)
        p = pose_agreement(onnx, ref, frame)
        if p is not None:
            final.append(p)
            both += 1
        elif (onnx.infer(frame, 0) is None) != (ref.infer(frame, 0) is None):
            only_one += 1
    table = {"video": str(args.video), "frames": n, "frames_with_person_both": both,
             "frames_person_in_one_backend_only": only_one,
             "same_input_tensors_max": {k: max(d[k] for d in tens) for k in tens[0]} if tens else {},
             "final_landmarks_max": {k: max(d[k] for d in final) for k in final[0]} if final else {},
             "final_xy_px_p95": float(np.percentile([d["xy_px_max"] for d in final], 95)) if final else None}
    print(json.dumps(table, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
