"""BlazePose (full) through ONNX Runtime: the production pose backend.

The pipeline (MediaPipe's ``pose_landmark_cpu`` graph, rewritten; the model runner is pluggable
so :mod:`runtime.vision.pose_litert` runs the original ``.tflite`` through the same code):

1. **ROI**: the previous frame's ROI from its auxiliary landmarks (tracking) while the pose score
   stays ≥ ``min_tracking_confidence``; otherwise the detector (224×224 letterboxed frame, values
   −1..1, SSD anchors + weighted NMS, :mod:`runtime.vision.pose_anchors`) and the ROI from its
   hip-centre and body-circle keypoints (side × 1.25, rotation of the body axis).
2. **Crop**: affine warp of the rotated square ROI to 256×256 (bilinear, edge replicated), values 0..1.
3. **Landmarks**: 39 points (33 BlazePose + 6 auxiliary) × (x, y, z, visibility, presence) in
   tensor pixels, refined on the 64×64 heatmap (7×7 window, MediaPipe's ``RefineLandmarksFromHeatmap``),
   projected back to full-frame pixels; visibility/presence as sigmoids of the logits; world landmarks (m,
   BlazePose frame: hips origin, y down) rotated by the ROI rotation.

Providers (``OnnxPose``): TensorRT → CUDA → CPU, the first that
``onnxruntime.get_available_providers()`` offers and that builds a session; the provider in use and
the SHA-256 of each model file are logged once. TensorRT keeps its engine cache under
``build/pose_onnx/trt_cache/<device>``.

Session options for this machine (:func:`session_options`): graph optimisation ``ORT_ENABLE_ALL``,
sequential execution with one inter-op thread, the CPU memory arena and memory-pattern planning on
(the input shapes never change, so every run after the first reuses the same buffers), worker threads
not spinning, and ``intra_op_threads`` = 1 when the process may use ≤ 2 CPUs (on the 2-core lab machine the
estimation and torque processes need the other core: measured under load, 1 thread gave the landmark
model a median 93 ms vs 155 ms with 2), else half the CPUs it may use.

Detector runs are counted (``detector_runs``: every run of the detector model; ``detector_reasons``: why
:meth:`BlazePoseTracker.infer` ran it, ``no_track``, ``low_confidence`` or ``prompt_moved``): in steady
tracking the detector does not run at all.

The landmark model is ``fp32`` (the converted model), ``nosegm`` (the same model without the segmentation
output the runtime never reads, and without the 33 nodes only that output needed: the four outputs used are
the same numbers, at about 60 % of the CPU time; :mod:`runtime.vision.pose_build.prune_outputs`) or ``int8``
(static quantisation calibrated on frames of the shared footage); all built by the same step. ``"auto"`` takes
int8 when the manifest records it as accepted against fp32, else ``nosegm`` when the build found its outputs
equal to the full model's, else fp32: see :mod:`runtime.vision.pose_build.quantize`.
"""
from __future__ import annotations

import logging
import math
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from runtime.vision.pose_anchors import (INPUT_SIZE as DET_SIZE, ROI_SCALE, Roi, decode_detections, detection_to_roi,
                                         letterbox_roi, roi_from_keypoints, weighted_nms)
from runtime.vision.pose_types import N_LANDMARKS, BoundingBox, PoseResult

log = logging.getLogger(__name__)

LM_SIZE = 256
N_ALL_LANDMARKS = 39  # 33 BlazePose + 6 auxiliary (33/34: ROI alignment points)
HEATMAP_KERNEL = 7
HEATMAP_MIN_CONFIDENCE = 0.5
AUX_ROI = (33, 34)

#: A model runner: NHWC float32 input → the model's outputs in its declared order.
Runner = Callable[[np.ndarray], Sequence[np.ndarray]]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def check_frame(frame_rgb: np.ndarray) -> None:
    """Raise ValueError unless ``frame_rgb`` is an (H, W, 3) uint8 image."""
    if not isinstance(frame_rgb, np.ndarray) or frame_rgb.dtype != np.uint8 or frame_rgb.ndim != 3 \
            or frame_rgb.shape[2] != 3 or frame_rgb.shape[0] < 2 or frame_rgb.shape[1] < 2:
        shape = getattr(frame_rgb, "shape", None)
        dtype = getattr(frame_rgb, "dtype", type(frame_rgb).__name__)
        raise ValueError(f"frame_rgb: expected (H, W, 3) uint8 RGB, got shape {shape} dtype {dtype}")


def crop_tensor(frame_rgb: np.ndarray, roi: Roi, size: int, low: float, high: float,
                replicate: bool) -> np.ndarray:
    """(1, size, size, 3) float32: the ROI warped to ``size``×``size``, values mapped 0..255 → low..high.

    Tensor pixel (i, j) samples the frame at ``roi.tensor_to_image() @ (j/size, i/size, 1)`` (corner-to-corner,
    as MediaPipe's OpenCV ``ImageToTensor``), bilinear; outside the frame: edge replicated or zero.
    """
    import cv2

    m = roi.tensor_to_image().copy()
    m[:, :2] /= size  # tensor pixels → frame pixels
    border = cv2.BORDER_REPLICATE if replicate else cv2.BORDER_CONSTANT
    warped = cv2.warpAffine(frame_rgb, m, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                            borderMode=border, borderValue=(0, 0, 0))
    scale = (high - low) / 255.0
    return (warped.astype(np.float32) * np.float32(scale) + np.float32(low))[None]


def refine_from_heatmap(xy_norm: np.ndarray, heatmap: np.ndarray, kernel: int = HEATMAP_KERNEL,
                        min_confidence: float = HEATMAP_MIN_CONFIDENCE) -> np.ndarray:
    """MediaPipe's ``RefineLandmarksFromHeatmapCalculator``: (N, 2) normalised x, y refined on (h, w, N) logits.

    Each landmark moves to the sigmoid-weighted mean of the ``kernel``×``kernel`` heatmap cells around it
    (cell index / heatmap size, as MediaPipe) when the window's peak confidence ≥ ``min_confidence``.
    All landmarks at once (one gather of their windows; cells outside the heatmap weigh 0).
    """
    hm_h, hm_w, n = heatmap.shape
    out = np.array(xy_norm, dtype=np.float64, copy=True)
    k = min(n, out.shape[0])
    if k == 0:
        return out
    off = (kernel - 1) // 2
    x, y = out[:k, 0], out[:k, 1]
    valid = (x >= 0) & (y >= 0)
    col = np.where(valid, x * hm_w, 0.0).astype(np.int64)   # x >= 0: truncation = int()
    row = np.where(valid, y * hm_h, 0.0).astype(np.int64)
    valid &= (col < hm_w) & (row < hm_h)
    steps = np.arange(-off, off + 1)
    rows, cols = row[:, None] + steps, col[:, None] + steps                      # (k, kernel)
    inside = ((rows >= 0) & (rows < hm_h))[:, :, None] & ((cols >= 0) & (cols < hm_w))[:, None, :]
    logits = np.asarray(heatmap)[np.clip(rows, 0, hm_h - 1)[:, :, None], np.clip(cols, 0, hm_w - 1)[:, None, :],
                                 np.arange(k)[:, None, None]]
    win = np.where(inside, _sigmoid(logits), 0.0)                                # (k, kernel, kernel)
    total = win.sum(axis=(1, 2))
    ok = valid & (win.max(axis=(1, 2)) >= min_confidence) & (total > 0)
    if np.any(ok):
        t = total[ok]
        out[:k][ok, 0] = (cols[ok][:, None, :] * win[ok]).sum(axis=(1, 2)) / t / hm_w
        out[:k][ok, 1] = (rows[ok][:, :, None] * win[ok]).sum(axis=(1, 2)) / t / hm_h
    return out


def decode_landmarks(outputs: Sequence[np.ndarray], roi: Roi) -> dict[str, np.ndarray | float]:
    """Landmark-model outputs (Identity..Identity_4) → full-frame values for all 39 points.

    Returns ``xy`` (39, 2) px, ``z`` (39,) px, ``visibility``/``presence`` (39,) 0..1, ``world`` (39, 3) m,
    ``score`` 0..1 (the model's pose flag is already a probability, used as is, as MediaPipe does),
    ``tensor`` (39, 5) the raw landmark tensor (tensor pixels, logits).
    """
    raw, flag, _seg, heatmap, world = outputs
    lm = np.asarray(raw, dtype=np.float64).reshape(N_ALL_LANDMARKS, 5)
    xy_norm = refine_from_heatmap(lm[:, :2] / LM_SIZE, np.asarray(heatmap)[0])
    m = roi.tensor_to_image()
    xy = np.hstack([xy_norm, np.ones((N_ALL_LANDMARKS, 1))]) @ m.T
    c, s = math.cos(roi.rotation), math.sin(roi.rotation)
    w = np.asarray(world, dtype=np.float64).reshape(N_ALL_LANDMARKS, 3)
    world_rot = np.column_stack([c * w[:, 0] - s * w[:, 1], s * w[:, 0] + c * w[:, 1], w[:, 2]])
    return {"xy": xy, "z": lm[:, 2] / LM_SIZE * roi.size, "visibility": _sigmoid(lm[:, 3]),
            "presence": _sigmoid(lm[:, 4]), "world": world_rot,
            "score": float(np.asarray(flag, dtype=np.float64).reshape(-1)[0]), "tensor": lm}


class BlazePoseTracker:
    """Detector + landmark model + ROI tracking around two model runners; implements ``PoseBackend``.

    ``detector``: (1, 224, 224, 3) in −1..1 → (boxes (1, 2254, 12), scores (1, 2254, 1)).
    ``landmarks``: (1, 256, 256, 3) in 0..1 → (landmarks (1, 195), flag (1, 1), segmentation, heatmap
    (1, 64, 64, 39), world (1, 117)).
    """

    def __init__(self, detector: Runner, landmarks: Runner, name: str, min_detection_confidence: float = 0.5,
                 min_tracking_confidence: float = 0.5) -> None:
        for field_name, v in (("min_detection_confidence", min_detection_confidence),
                              ("min_tracking_confidence", min_tracking_confidence)):
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{field_name}: must be within 0..1, got {v}")
        self.detector_runner, self.landmark_runner = detector, landmarks
        self.name = name
        self.min_detection_confidence = float(min_detection_confidence)
        self.min_tracking_confidence = float(min_tracking_confidence)
        self._track: Roi | None = None
        self._track_bbox: BoundingBox | None = None
        self.detector_runs = 0
        self.detector_reasons: dict[str, int] = {"no_track": 0, "low_confidence": 0, "prompt_moved": 0}
        self.frames = 0

    def reset(self) -> None:
        """Forget the tracked ROI (the next call runs the detector)."""
        self._track = None
        self._track_bbox = None

    def seed_track(self, box: BoundingBox) -> None:
        """Track from an upright person's box (pixels) on the next call: landmark ROI centred on the box, side
        ``ROI_SCALE`` × its larger dimension, no rotation (the detector's ROI for a standing person). A landmark
        score below ``min_tracking_confidence`` there falls back to the detector as a lost track does."""
        cx, cy = box.center
        side = ROI_SCALE * max(box.x1 - box.x0, box.y1 - box.y0)
        self._track = Roi(float(cx), float(cy), float(side), 0.0) if side > 0 else None
        self._track_bbox = box if self._track is not None else None

    def seed_detection(self, det: Any) -> None:
        """Track from a detection (:class:`runtime.vision.pose_mediapipe.PersonDetection`, full-frame pixels) on
        the next call: its alignment keypoints give the landmark ROI, as the detector's own path does."""
        try:
            self._track = roi_from_keypoints(np.asarray(det.keypoints)[0], np.asarray(det.keypoints)[1])
        except ValueError:
            self._track = None
        self._track_bbox = det.body if self._track is not None else None

    def track_from(self, result: PoseResult) -> None:
        """Track ``result``'s person from the next frame on (its ROI from its auxiliary landmarks, its box).

        For a caller that ran this backend on several people in one frame and chose one of them.
        """
        aux = result.extras.get("auxiliary_xy")
        try:
            self._track = None if aux is None else roi_from_keypoints(aux[AUX_ROI[0] - N_LANDMARKS],
                                                                      aux[AUX_ROI[1] - N_LANDMARKS])
        except ValueError:
            self._track = None
        self._track_bbox = result.bbox if self._track is not None else None

    # -- stages --------------------------------------------------------------------------------
    def detect_raw(self, frame_rgb: np.ndarray, view: Roi) -> list[tuple[np.ndarray, np.ndarray, float]]:
        """The detector on the square ``view`` of the frame: (box (4,) px x0 y0 x1 y1, keypoints (4, 2) px, score)
        per candidate above ``min_detection_confidence``, before NMS."""
        check_frame(frame_rgb)
        self.detector_runs += 1
        boxes, scores = self.detector_runner(crop_tensor(frame_rgb, view, DET_SIZE, -1.0, 1.0, replicate=False))[:2]
        m = view.tensor_to_image()
        out = []
        for d in decode_detections(boxes, scores, min_score=self.min_detection_confidence):
            corners = np.array([[d.box[0], d.box[1], 1.0], [d.box[2], d.box[3], 1.0]]) @ m.T
            kps = np.hstack([d.keypoints, np.ones((len(d.keypoints), 1))]) @ m.T
            out.append((np.array([*corners.min(axis=0), *corners.max(axis=0)]), kps, d.score))
        return out

    def detect(self, frame_rgb: np.ndarray, view: Roi | None = None) -> list[tuple[float, Roi]]:
        """Every person the detector finds in ``view`` (default: whole frame letterboxed): (score, ROI), best first."""
        check_frame(frame_rgb)
        h, w = frame_rgb.shape[:2]
        view = view or letterbox_roi(w, h)
        self.detector_runs += 1
        boxes, scores = self.detector_runner(crop_tensor(frame_rgb, view, DET_SIZE, -1.0, 1.0, replicate=False))[:2]
        dets = weighted_nms(decode_detections(boxes, scores, min_score=self.min_detection_confidence))
        out = []
        for d in dets:
            try:
                out.append((d.score, detection_to_roi(d, view)))
            except ValueError:  # degenerate keypoints: no ROI
                continue
        return out

    def landmarks(self, frame_rgb: np.ndarray, roi: Roi) -> dict[str, np.ndarray | float]:
        """Landmark model on ``roi``: see :func:`decode_landmarks`."""
        check_frame(frame_rgb)
        return decode_landmarks(self.landmark_runner(crop_tensor(frame_rgb, roi, LM_SIZE, 0.0, 1.0, replicate=True)), roi)

    # -- PoseBackend ---------------------------------------------------------------------------
    def infer(self, frame_rgb: np.ndarray, t_capture_ns: int, roi: BoundingBox | None = None, *,
              detector_fallback: bool = True) -> PoseResult | None:
        """Landmarks of the person in ``roi`` (pixels; None: the detector's best) or of the tracked person.

        ``frame_rgb`` (H, W, 3) uint8 RGB; ``t_capture_ns`` copied to the result. With ``roi`` the detector
        looks at a square 1.5× the box around it and keeps the best person whose hip centre is inside the box;
        tracking continues while the tracked person's box overlaps ``roi`` (IoU ≥ 0.3). ``detector_fallback``
        False: a tracked ROI whose landmark score is too low gives None instead of a detector run (a caller with
        a bound on model runs per frame).
        """
        check_frame(frame_rgb)
        timings: dict[str, float] = {}
        source = "tracking"
        self.frames += 1
        lm_roi = self._track
        reason = "no_track" if lm_roi is None else "low_confidence"
        if lm_roi is not None and roi is not None and (self._track_bbox is None or roi.iou(self._track_bbox) < 0.3):
            lm_roi, reason = None, "prompt_moved"
        res = None
        if lm_roi is not None:
            t0 = time.perf_counter()
            res = self.landmarks(frame_rgb, lm_roi)
            timings["landmarks_ms"] = (time.perf_counter() - t0) * 1e3
            if res["score"] < self.min_tracking_confidence:
                res = None
        if res is None and lm_roi is not None and not detector_fallback:
            self.reset()
            return None
        if res is None:
            source = "detector"
            self.detector_reasons[reason] += 1
            t0 = time.perf_counter()
            lm_roi = self._detect_one(frame_rgb, roi)
            timings["detector_ms"] = (time.perf_counter() - t0) * 1e3
            if lm_roi is None:
                self.reset()
                return None
            t0 = time.perf_counter()
            res = self.landmarks(frame_rgb, lm_roi)
            timings["landmarks_ms"] = timings.get("landmarks_ms", 0.0) + (time.perf_counter() - t0) * 1e3
            if res["score"] < self.min_tracking_confidence:
                self.reset()
                return None
        xy = res["xy"]
        try:
            self._track = roi_from_keypoints(xy[AUX_ROI[0]], xy[AUX_ROI[1]])
        except ValueError:
            self._track = None
        main = xy[:N_LANDMARKS]
        x0, y0 = main.min(axis=0)
        x1, y1 = main.max(axis=0)
        bbox = BoundingBox(float(x0), float(y0), float(max(x1, x0 + 1.0)), float(max(y1, y0 + 1.0)))
        self._track_bbox = bbox
        return PoseResult(image_xy=main.copy(), image_z=res["z"][:N_LANDMARKS].copy(),
                          visibility=res["visibility"][:N_LANDMARKS].copy(),
                          presence=res["presence"][:N_LANDMARKS].copy(), world_xyz=res["world"][:N_LANDMARKS].copy(),
                          score=float(res["score"]), bbox=bbox, t_capture_ns=int(t_capture_ns), backend=self.name,
                          extras={"roi": lm_roi, "roi_source": source, "timings_ms": timings,
                                  "auxiliary_xy": xy[N_LANDMARKS:].copy()})

    def _detect_one(self, frame_rgb: np.ndarray, prompt: BoundingBox | None) -> Roi | None:
        if prompt is None:
            found = self.detect(frame_rgb)
            return found[0][1] if found else None
        cx, cy = prompt.center
        side = 1.5 * max(prompt.x1 - prompt.x0, prompt.y1 - prompt.y0)
        for _score, r in self.detect(frame_rgb, Roi(cx, cy, side, 0.0)):
            if prompt.x0 <= r.cx <= prompt.x1 and prompt.y0 <= r.cy <= prompt.y1:
                return r
        return None


# -- ONNX Runtime ------------------------------------------------------------------------------

PROVIDER_ORDER = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
PROVIDER_TAGS = {"TensorrtExecutionProvider": "tensorrt", "CUDAExecutionProvider": "cuda", "CPUExecutionProvider": "cpu"}


def gpu_tag() -> str:
    """A file-name-safe tag of the first GPU (name and compute capability), for the TensorRT engine cache."""
    exe = shutil.which("nvidia-smi")
    if exe:
        try:
            out = subprocess.run([exe, "--query-gpu=name,compute_cap", "--format=csv,noheader"], capture_output=True,
                                 text=True, timeout=10).stdout.strip().splitlines()
            if out:
                return re.sub(r"[^A-Za-z0-9.]+", "_", out[0]).strip("_") or "gpu"
        except (OSError, subprocess.TimeoutExpired):
            pass
    try:  # Jetson: no nvidia-smi
        return re.sub(r"[^A-Za-z0-9.]+", "_", Path("/proc/device-tree/model").read_text().strip("\x00 \n")) or "gpu"
    except OSError:
        return "gpu"


def provider_candidates(available: Sequence[str], cache_dir: Path, prefer: str | None = None,
                        trt_fp16: bool = False) -> list[tuple[str, dict]]:
    """(provider, options) to try in order: TensorRT → CUDA → CPU, restricted to ``available``.

    ``prefer`` (``"tensorrt"``, ``"cuda"`` or ``"cpu"``) starts the list there. TensorRT gets its engine and
    timing caches under ``cache_dir``.
    """
    order = list(PROVIDER_ORDER)
    if prefer is not None:
        tags = {v: k for k, v in PROVIDER_TAGS.items()}
        if prefer not in tags:
            raise ValueError(f"provider: must be one of {sorted(tags)}, got {prefer!r}")
        order = order[order.index(tags[prefer]):]
    out: list[tuple[str, dict]] = []
    for p in order:
        if p not in available:
            continue
        if p == "TensorrtExecutionProvider":
            out.append((p, {"trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache_dir),
                            "trt_timing_cache_enable": True, "trt_timing_cache_path": str(cache_dir),
                            "trt_fp16_enable": bool(trt_fp16), "trt_max_workspace_size": 1 << 30}))
        else:
            out.append((p, {}))
    if not out:
        raise RuntimeError(f"onnxruntime offers none of {list(order)} (available: {list(available)})")
    return out


def default_intra_op_threads(cpus: int | None = None) -> int:
    """ONNX Runtime intra-op threads for a process allowed ``cpus`` CPUs (default: its affinity set).

    1 up to 2 CPUs (the other core belongs to the estimation and torque processes), else half of them.
    """
    n = len(os.sched_getaffinity(0)) if cpus is None else int(cpus)
    if n < 1:
        raise ValueError(f"cpus: must be >= 1, got {n}")
    return 1 if n <= 2 else n // 2


#: ``optimization`` names of :func:`session_options` → ``onnxruntime.GraphOptimizationLevel`` members.
OPTIMIZATION_LEVELS = {"all": "ORT_ENABLE_ALL", "extended": "ORT_ENABLE_EXTENDED", "basic": "ORT_ENABLE_BASIC",
                       "none": "ORT_DISABLE_ALL"}


def session_options(intra_op_threads: int = 0, allow_spinning: bool = False, *, optimization: str = "all",
                    parallel: bool = False, memory_arena: bool = True):
    """``onnxruntime.SessionOptions`` for the pose models on this machine (see the module docstring).

    ``intra_op_threads`` 0: :func:`default_intra_op_threads`. The defaults are the runtime's; ``optimization``
    (a key of :data:`OPTIMIZATION_LEVELS`), ``parallel`` (parallel execution, two inter-op threads) and
    ``memory_arena`` (CPU arena and memory patterns) exist for the benchmark's comparison. Returns the options
    object; the settings chosen are in ``session_settings(options)``.
    """
    import onnxruntime as ort

    if intra_op_threads < 0:
        raise ValueError(f"intra_op_threads: must be >= 0, got {intra_op_threads}")
    if optimization not in OPTIMIZATION_LEVELS:
        raise ValueError(f"optimization: must be one of {sorted(OPTIMIZATION_LEVELS)}, got {optimization!r}")
    so = ort.SessionOptions()
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, OPTIMIZATION_LEVELS[optimization])
    so.execution_mode = ort.ExecutionMode.ORT_PARALLEL if parallel else ort.ExecutionMode.ORT_SEQUENTIAL
    so.intra_op_num_threads = int(intra_op_threads) or default_intra_op_threads()
    so.inter_op_num_threads = 2 if parallel else 1
    so.enable_cpu_mem_arena = bool(memory_arena)
    so.enable_mem_pattern = bool(memory_arena)
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if allow_spinning else "0")
    so.log_severity_level = 3
    return so


def session_settings(so) -> dict[str, object]:
    """The settings of a :func:`session_options` object, for logs and reports."""
    return {"graph_optimization_level": str(so.graph_optimization_level).rsplit(".", 1)[-1],
            "execution_mode": str(so.execution_mode).rsplit(".", 1)[-1],
            "intra_op_threads": so.intra_op_num_threads, "inter_op_threads": so.inter_op_num_threads,
            "cpu_mem_arena": so.enable_cpu_mem_arena, "mem_pattern": so.enable_mem_pattern,
            "allow_spinning": so.get_session_config_entry("session.intra_op.allow_spinning") == "1"}


LANDMARK_MODELS = ("fp32", "nosegm", "int8", "auto")
#: The landmark model's outputs in :func:`decode_landmarks` order; the segmentation mask may be absent.
LANDMARK_OUTPUTS = ("Identity", "Identity_1", "Identity_2", "Identity_3", "Identity_4")
OPTIONAL_OUTPUTS = ("Identity_2",)


def landmark_session_runner(sess) -> Runner:
    """A :data:`Runner` for a landmark-model session: its outputs in :data:`LANDMARK_OUTPUTS` order, None for the
    segmentation mask when the model has none. ValueError when a used output is missing or an unknown one present."""
    names = [o.name for o in sess.get_outputs()]
    needed = [n for n in LANDMARK_OUTPUTS if n not in OPTIONAL_OUTPUTS]
    if any(n not in names for n in needed) or any(n not in LANDMARK_OUTPUTS for n in names):
        raise ValueError(f"landmark model outputs: expected {list(LANDMARK_OUTPUTS)} ({list(OPTIONAL_OUTPUTS)} "
                         f"optional), got {names}; rebuild the models")
    run_names = [n for n in LANDMARK_OUTPUTS if n in names]
    slots = [run_names.index(n) if n in run_names else None for n in LANDMARK_OUTPUTS]
    in_name = sess.get_inputs()[0].name

    def run(x: np.ndarray) -> list:
        got = sess.run(run_names, {in_name: x})
        return [None if k is None else got[k] for k in slots]

    return run


def choose_landmark_model(manifest: dict) -> str:
    """``"auto"``'s choice: int8 when accepted against fp32, else nosegm when its check passed, else fp32."""
    from runtime.vision.pose_build import pruned_entry, quantized_entry

    q, p = quantized_entry(manifest), pruned_entry(manifest)
    if q is not None and q.get("accepted"):
        return "int8"
    return "nosegm" if p is not None and p.get("accepted") else "fp32"


class OnnxPose(BlazePoseTracker):
    """BlazePose through ONNX Runtime with the models built by ``python -m runtime.vision.pose_build``.

    Parameters
    ----------
    model_dir : folder with ``manifest.json`` and the ONNX files (default ``build/pose_onnx``).
    provider : None = best available (TensorRT → CUDA → CPU), or ``"tensorrt"``/``"cuda"``/``"cpu"`` to start
        the fall-back chain there.
    intra_op_threads : ONNX Runtime CPU threads per session (0 = :func:`default_intra_op_threads`).
    allow_spinning : let ONNX Runtime's CPU worker threads busy-wait between ops (off by default: on a
        machine shared with the 500 Hz torque process, spinning threads steal its CPU time).
    trt_fp16 : let TensorRT run in fp16 (changes numerics; off by default).
    landmark_model : ``"fp32"`` (default), ``"nosegm"`` (fp32 without the segmentation output), ``"int8"`` (the
        quantised model) or ``"auto"`` (:func:`choose_landmark_model`); FileNotFoundError when the one asked for
        was not built. The int8 model runs on the CPU provider (TensorRT/CUDA get fp32 and their own fp16).
    """

    def __init__(self, model_dir: Path | None = None, provider: str | None = None, intra_op_threads: int = 0,
                 allow_spinning: bool = False, trt_fp16: bool = False, min_detection_confidence: float = 0.5,
                 min_tracking_confidence: float = 0.5, landmark_model: str = "fp32") -> None:
        import onnxruntime as ort

        from runtime.vision.pose_build import (DEFAULT_OUT, load_manifest, onnx_path, pruned_entry, pruned_path,
                                               quantized_entry, quantized_path)

        if intra_op_threads < 0:
            raise ValueError(f"intra_op_threads: must be >= 0, got {intra_op_threads}")
        if landmark_model not in LANDMARK_MODELS:
            raise ValueError(f"landmark_model: must be one of {LANDMARK_MODELS}, got {landmark_model!r}")
        self.model_dir = Path(model_dir) if model_dir is not None else DEFAULT_OUT
        self.manifest = load_manifest(self.model_dir)
        paths = {n: onnx_path(n, self.model_dir) for n in ("pose_detection", "pose_landmark_full")}
        self.model_sha256 = {n: self.manifest["models"][n]["onnx_sha256"] for n in paths}
        if landmark_model == "auto":
            landmark_model = choose_landmark_model(self.manifest)
        if landmark_model == "int8":
            paths["pose_landmark_full"] = quantized_path(self.model_dir)
            self.model_sha256["pose_landmark_full"] = quantized_entry(self.manifest)["onnx_sha256"]
        elif landmark_model == "nosegm":
            paths["pose_landmark_full"] = pruned_path(self.model_dir)
            self.model_sha256["pose_landmark_full"] = pruned_entry(self.manifest)["onnx_sha256"]
        self.landmark_model = landmark_model
        available = ort.get_available_providers()
        needs_gpu_tag = "TensorrtExecutionProvider" in available and provider in (None, "tensorrt")
        cache = self.model_dir / "trt_cache" / (gpu_tag() if needs_gpu_tag else "none")
        candidates = provider_candidates(available, cache, provider, trt_fp16)
        so = session_options(intra_op_threads, allow_spinning)
        self.session_settings = session_settings(so)
        if landmark_model == "int8":   # QDQ int8 kernels: CPU provider
            candidates = [c for c in candidates if c[0] == "CPUExecutionProvider"] or candidates
        self.provider = ""
        sessions = None
        for i, (prov, opts) in enumerate(candidates):
            try:
                if prov == "TensorrtExecutionProvider":
                    cache.mkdir(parents=True, exist_ok=True)
                chain = [(p, o) for p, o in candidates[i:]]
                sessions = {n: ort.InferenceSession(str(p), sess_options=so, providers=[c[0] for c in chain],
                                                    provider_options=[c[1] for c in chain]) for n, p in paths.items()}
            except Exception as exc:  # noqa: BLE001 - any provider failure falls back to the next
                nxt = candidates[i + 1][0] if i + 1 < len(candidates) else None
                if nxt is None:
                    raise
                log.warning("pose onnx: %s failed (%s: %s); falling back to %s", prov, type(exc).__name__,
                            str(exc).splitlines()[0][:200] if str(exc) else "", nxt)
                continue
            used = sessions["pose_landmark_full"].get_providers()[0]
            if used != prov:
                log.warning("pose onnx: %s unavailable at session creation; ONNX Runtime fell back to %s", prov, used)
            self.provider = used
            break
        assert sessions is not None
        self.sessions = sessions
        log.info("pose onnx: provider %s; landmark model %s; session %s; %s", self.provider, self.landmark_model,
                 self.session_settings,
                 "; ".join(f"{n} {paths[n].name} sha256={self.model_sha256[n]}" for n in paths))
        det, lm = sessions["pose_detection"], sessions["pose_landmark_full"]
        det_in = det.get_inputs()[0].name
        det_out = [o.name for o in det.get_outputs()]
        if det_out != ["Identity", "Identity_1"]:
            raise ValueError(f"{self.model_dir}: unexpected detector outputs {det_out}; rebuild the models")
        super().__init__(lambda x: det.run(det_out, {det_in: x}), landmark_session_runner(lm),
                         name=f"onnx-{PROVIDER_TAGS.get(self.provider, self.provider)}",
                         min_detection_confidence=min_detection_confidence,
                         min_tracking_confidence=min_tracking_confidence)


class OnnxPersonDetector:
    """Every person the ONNX detector finds, as :class:`runtime.vision.pose_mediapipe.PersonDetection`.

    The same tiling as :class:`runtime.vision.pose_mediapipe.PoseDetector` (the whole frame letterboxed, plus
    overlapping square tiles of the shorter image side at half-side steps when the frame is wide or large, so
    that people far from the camera are found), merged with MediaPipe's weighted NMS; the detector model of
    ``pose`` (one run per tile, counted in ``pose.detector_runs``).
    """

    def __init__(self, pose: BlazePoseTracker, iou_threshold: float = 0.3, tiles: bool = True) -> None:
        if not 0.0 < iou_threshold < 1.0:
            raise ValueError(f"iou_threshold: must be within (0, 1), got {iou_threshold}")
        self.pose, self.iou_threshold, self.tiles = pose, float(iou_threshold), bool(tiles)

    def views(self, width: int, height: int) -> list[Roi]:
        """The detector views of a ``width``×``height`` frame (pixels): whole frame first, then the tiles."""
        views = [letterbox_roi(width, height)]
        if self.tiles and (max(height, width) > 1.3 * min(height, width) or min(height, width) > 2 * DET_SIZE):
            side = min(height, width)
            step = max(1, side // 2)
            xs = sorted(set(list(range(0, max(1, width - side + 1), step)) + [max(0, width - side)]))
            ys = sorted(set(list(range(0, max(1, height - side + 1), step)) + [max(0, height - side)]))
            views += [Roi(x + side / 2.0, y + side / 2.0, float(side), 0.0) for y in ys for x in xs]
        return views

    def detect(self, frame_rgb: np.ndarray) -> list:
        """All people in the frame (full-frame pixels), best score first."""
        check_frame(frame_rgb)
        h, w = frame_rgb.shape[:2]
        return self._merged(frame_rgb, self.views(w, h))

    def detect_view(self, frame_rgb: np.ndarray, k: int) -> list:
        """The people in view ``k`` (modulo :meth:`views`' count) only: one detector run, for a search spread
        over frames (``TrackerSettings.search_views_per_frame``); full-frame pixels, best score first."""
        check_frame(frame_rgb)
        h, w = frame_rgb.shape[:2]
        views = self.views(w, h)
        return self._merged(frame_rgb, [views[int(k) % len(views)]])

    def _merged(self, frame_rgb: np.ndarray, views: list[Roi]) -> list:
        from runtime.vision.pose_anchors import Detection
        from runtime.vision.pose_mediapipe import PersonDetection

        h, w = frame_rgb.shape[:2]
        cands = [Detection(b, k, s) for v in views for b, k, s in self.pose.detect_raw(frame_rgb, v)]
        out = []
        for d in weighted_nms(cands, self.iou_threshold):
            x0, y0 = max(0.0, float(d.box[0])), max(0.0, float(d.box[1]))
            x1, y1 = min(float(w), float(d.box[2])), min(float(h), float(d.box[3]))
            if x1 - x0 < 1 or y1 - y0 < 1:
                continue
            out.append(PersonDetection(BoundingBox(x0, y0, x1, y1), d.keypoints, d.score))
        return sorted(out, key=lambda d: -d.score)
