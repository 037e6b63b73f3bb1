"""Reference pose backend: MediaPipe's legacy ``mp.solutions.pose`` (BlazePose full, offline).

Only ``model_complexity=1`` works offline: the wheel bundles ``pose_landmark_full.tflite`` and
``pose_detection.tflite``; the lite and heavy landmark models are downloaded at run time by
MediaPipe, which fails without a network, so they are refused here.

Two MediaPipe graphs are kept:

* without a ROI, a **video-mode** graph (MediaPipe's own detector + landmark ROI tracking and
  landmark smoothing) over the full frame: it follows whoever it locked on to and may switch
  people when they cross (it does on the ``sports2d`` demo) — the prompted-person tracker in
  :mod:`runtime.vision.tracking` uses the ROI mode instead;
* with a ROI, a **static-image** graph run on the crop ``roi`` expanded by ``roi_margin`` of its
  size on each side (clipped to the frame): the detector runs on every crop, so nothing carries
  over from another person; landmarks are mapped back to full-frame pixels.

:class:`PoseDetector` runs the same bundled ``pose_detection.tflite`` directly (ai-edge-litert) and
returns *every* person (the legacy graph keeps one), over overlapping tiles so that people far
from the camera are found: the tracker's candidates and the anonymiser's head boxes.

What the legacy API does not expose is not invented: per-landmark ``presence`` is NaN (the
legacy graph does not fill it) and ``score`` (the landmark model's pose flag) is NaN; the graph
only returns landmarks when that flag is above ``min_tracking_confidence`` (video mode) or the
detector fired (static mode).
"""
from __future__ import annotations

import numpy as np

from runtime.vision.pose_types import N_LANDMARKS, BoundingBox, PoseResult

BACKEND_NAME = "mediapipe"


def _check_frame(frame_rgb: np.ndarray) -> None:
    if not isinstance(frame_rgb, np.ndarray) or frame_rgb.ndim != 3 or frame_rgb.shape[2] != 3:
        shape = getattr(frame_rgb, "shape", None)
        raise ValueError(f"frame_rgb: expected an (H, W, 3) RGB array, got shape {shape}")
    if frame_rgb.dtype != np.uint8:
        raise ValueError(f"frame_rgb: expected dtype uint8, got {frame_rgb.dtype}")
    if frame_rgb.shape[0] < 8 or frame_rgb.shape[1] < 8:
        raise ValueError(f"frame_rgb: image too small, shape {frame_rgb.shape}")


def expand_roi(roi: BoundingBox, margin: float, width: int, height: int) -> tuple[int, int, int, int]:
    """``roi`` grown by ``margin`` × its width/height on each side, clipped to the frame; int pixels.

    Returns (x0, y0, x1, y1) with x1 > x0 and y1 > y0 (slicing convention, x1/y1 exclusive).
    Raises ValueError when the ROI lies entirely outside the frame.
    """
    w, h = roi.x1 - roi.x0, roi.y1 - roi.y0
    x0 = int(np.floor(max(0.0, roi.x0 - margin * w)))
    y0 = int(np.floor(max(0.0, roi.y0 - margin * h)))
    x1 = int(np.ceil(min(float(width), roi.x1 + margin * w)))
    y1 = int(np.ceil(min(float(height), roi.y1 + margin * h)))
    if x1 - x0 < 2 or y1 - y0 < 2:
        raise ValueError(f"roi: {roi} lies outside the {width}x{height} frame")
    return x0, y0, x1, y1


class MediaPipePose:
    """BlazePose (full) through MediaPipe's legacy solution API; implements :class:`PoseBackend`.

    Parameters
    ----------
    model_complexity : must be 1 (the only landmark model bundled in the wheel).
    min_detection_confidence, min_tracking_confidence : MediaPipe thresholds, 0..1.
    roi_margin : fraction of the ROI's width/height added on each side before cropping.
    enable_segmentation : also return the pose model's person mask (float32 0..1, full-frame
        size, zeros outside the crop) in ``result.extras["segmentation"]``.
    """

    name = BACKEND_NAME

    def __init__(self, model_complexity: int = 1, min_detection_confidence: float = 0.5,
                 min_tracking_confidence: float = 0.5, roi_margin: float = 0.25,
                 enable_segmentation: bool = False) -> None:
        if model_complexity != 1:
            raise ValueError(f"model_complexity: only 1 (pose_landmark_full, bundled) works offline, got {model_complexity}")
        for field_name, v in (("min_detection_confidence", min_detection_confidence),
                              ("min_tracking_confidence", min_tracking_confidence)):
            if not (0.0 <= v <= 1.0):
                raise ValueError(f"{field_name}: must be within 0..1, got {v}")
        if not (0.0 <= roi_margin <= 2.0):
            raise ValueError(f"roi_margin: must be within 0..2 (fraction of the ROI size), got {roi_margin}")
        self._kw = dict(model_complexity=1, min_detection_confidence=float(min_detection_confidence),
                        min_tracking_confidence=float(min_tracking_confidence),
                        enable_segmentation=bool(enable_segmentation))
        self.roi_margin = float(roi_margin)
        self.enable_segmentation = bool(enable_segmentation)
        self._video = None
        self._static = None

    # -- graphs (created lazily: importing mediapipe takes ~1 s) ------------------------------
    def _graph(self, static: bool):
        import mediapipe as mp

        if static:
            if self._static is None:
                self._static = mp.solutions.pose.Pose(static_image_mode=True, smooth_landmarks=False, **self._kw)
            return self._static
        if self._video is None:
            self._video = mp.solutions.pose.Pose(static_image_mode=False, smooth_landmarks=True, **self._kw)
        return self._video

    def infer(self, frame_rgb: np.ndarray, t_capture_ns: int, roi: BoundingBox | None = None) -> PoseResult | None:
        """Landmarks of the person in ``roi`` (or MediaPipe's tracked person when None); None when nobody.

        ``frame_rgb``: (H, W, 3) uint8 RGB. ``t_capture_ns``: capture time, copied to the result.
        """
        _check_frame(frame_rgb)
        height, width = frame_rgb.shape[:2]
        if roi is None:
            x0, y0, x1, y1 = 0, 0, width, height
            image = frame_rgb
        else:
            x0, y0, x1, y1 = expand_roi(roi, self.roi_margin, width, height)
            image = frame_rgb[y0:y1, x0:x1]
        image = np.ascontiguousarray(image)
        out = self._graph(static=roi is not None).process(image)
        if out.pose_landmarks is None:
            return None
        cw, ch = x1 - x0, y1 - y0
        lms = out.pose_landmarks.landmark
        if len(lms) != N_LANDMARKS:
            raise RuntimeError(f"mediapipe returned {len(lms)} landmarks, expected {N_LANDMARKS}")
        raw = np.array([(l.x, l.y, l.z, l.visibility) for l in lms], dtype=np.float64)
        image_xy = np.column_stack((raw[:, 0] * cw + x0, raw[:, 1] * ch + y0))
        image_z = raw[:, 2] * cw  # MediaPipe: z in the same normalised scale as x (crop width)
        visibility = raw[:, 3]
        if out.pose_world_landmarks is not None:
            world = np.array([(l.x, l.y, l.z) for l in out.pose_world_landmarks.landmark], dtype=np.float64)
        else:
            world = np.full((N_LANDMARKS, 3), np.nan)
        bx0, by0 = image_xy.min(axis=0)
        bx1, by1 = image_xy.max(axis=0)
        bbox = BoundingBox(float(bx0), float(by0), float(max(bx1, bx0 + 1.0)), float(max(by1, by0 + 1.0)))
        extras: dict = {"crop": (x0, y0, x1, y1), "mode": "static-roi" if roi is not None else "video"}
        if self.enable_segmentation and out.segmentation_mask is not None:
            mask = np.zeros((height, width), dtype=np.float32)
            mask[y0:y1, x0:x1] = np.asarray(out.segmentation_mask, dtype=np.float32)
            extras["segmentation"] = mask
        return PoseResult(image_xy=image_xy, image_z=image_z, visibility=visibility,
                          presence=np.full(N_LANDMARKS, np.nan), world_xyz=world, score=float("nan"),
                          bbox=bbox, t_capture_ns=int(t_capture_ns), backend=BACKEND_NAME, extras=extras)

    def reset(self) -> None:
        """Forget MediaPipe's tracked ROI (the next full-frame call runs the detector)."""
        if self._video is not None:
            self._video.reset()

    def close(self) -> None:
        """Release the MediaPipe graphs."""
        for g in (self._video, self._static):
            if g is not None:
                g.close()
        self._video = self._static = None

    def __enter__(self) -> "MediaPipePose":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# -- the bundled BlazePose person detector, all detections (the legacy graph keeps only one) ----

#: Input side of ``pose_detection.tflite``; anchors, decoding and weighted NMS are
#: :mod:`runtime.vision.pose_anchors` (shared with the ONNX backend).
_DET_INPUT = 224


class PersonDetection:
    """One person found by the BlazePose detector, in full-frame pixels.

    ``head``: the detector's box (BlazePose's detector is trained on the face/head box);
    ``hip_center``, ``body_radius`` (px): MediaPipe's alignment points (mid-hip and the full-body
    circle); ``body``: the square ROI MediaPipe derives from them (side 2.5 × radius);
    ``score``: 0..1.
    """

    __slots__ = ("head", "hip_center", "body_radius", "score", "keypoints")

    def __init__(self, head: BoundingBox, keypoints: np.ndarray, score: float) -> None:
        self.head = head
        self.keypoints = keypoints  # (4, 2) px: mid-hip, full-body point, mid-shoulder, upper-body point
        self.hip_center = (float(keypoints[0, 0]), float(keypoints[0, 1]))
        self.body_radius = float(np.hypot(*(keypoints[1] - keypoints[0])))
        self.score = float(score)

    @property
    def body(self) -> BoundingBox:
        half = max(1.0, 1.25 * self.body_radius)
        cx, cy = self.hip_center
        return BoundingBox(cx - half, cy - half, cx + half, cy + half)

    def __repr__(self) -> str:
        return f"PersonDetection(head={self.head}, score={self.score:.2f})"


class PoseDetector:
    """Every person the bundled ``pose_detection.tflite`` finds (run with ai-edge-litert).

    The frame is cut into overlapping square tiles (side = the shorter image side, step half a
    side) plus the whole frame, so that people far from the camera are still ≥ ~60 px tall at the
    detector's 224×224 input; detections are merged with MediaPipe's weighted NMS.
    """

    def __init__(self, min_score: float = 0.5, iou_threshold: float = 0.3, tiles: bool = True) -> None:
        if not (0.0 < min_score < 1.0):
            raise ValueError(f"min_score: must be within (0, 1), got {min_score}")
        import os

        import mediapipe
        from ai_edge_litert.interpreter import Interpreter

        self.model_path = os.path.join(os.path.dirname(mediapipe.__file__), "modules", "pose_detection",
                                       "pose_detection.tflite")
        self._it = Interpreter(model_path=self.model_path, num_threads=1)
        self._it.allocate_tensors()
        self._in = self._it.get_input_details()[0]["index"]
        outs = {tuple(d["shape"]): d["index"] for d in self._it.get_output_details()}
        self._out_reg = outs[(1, 2254, 12)]
        self._out_score = outs[(1, 2254, 1)]
        self.min_score, self.iou_threshold, self.tiles = float(min_score), float(iou_threshold), bool(tiles)

    def _run(self, image: np.ndarray):
        """Detections of one (h, w, 3) RGB image, in its pixels: boxes (n, 4), keypoints (n, 4, 2), scores."""
        import cv2

        h, w = image.shape[:2]
        s = _DET_INPUT / max(h, w)
        nh, nw = max(1, int(round(h * s))), max(1, int(round(w * s)))
        canvas = np.zeros((_DET_INPUT, _DET_INPUT, 3), np.float32)
        oy, ox = (_DET_INPUT - nh) // 2, (_DET_INPUT - nw) // 2
        canvas[oy:oy + nh, ox:ox + nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
        canvas = canvas / 127.5 - 1.0
        self._it.set_tensor(self._in, canvas[None])
        self._it.invoke()
        from runtime.vision.pose_anchors import decode_detections

        dets = decode_detections(self._it.get_tensor(self._out_reg), self._it.get_tensor(self._out_score),
                                 min_score=self.min_score)
        if not dets:
            return np.zeros((0, 4)), np.zeros((0, 4, 2)), np.zeros(0)
        # normalised letterboxed-tensor coordinates -> this image's pixels
        boxes = np.array([d.box for d in dets]) * _DET_INPUT
        kps = np.array([d.keypoints for d in dets]) * _DET_INPUT
        boxes = (boxes - [ox, oy, ox, oy]) / s
        kps = (kps - [ox, oy]) / s
        return boxes, kps, np.array([d.score for d in dets])

    def detect(self, frame_rgb: np.ndarray) -> list[PersonDetection]:
        """All people in the frame (full-frame pixels), best score first."""
        _check_frame(frame_rgb)
        h, w = frame_rgb.shape[:2]
        crops = [(0, 0, w, h)]
        if self.tiles and (max(h, w) > 1.3 * min(h, w) or min(h, w) > 2 * _DET_INPUT):
            side = min(h, w)
            step = max(1, side // 2)
            xs = sorted(set(list(range(0, max(1, w - side + 1), step)) + [max(0, w - side)]))
            ys = sorted(set(list(range(0, max(1, h - side + 1), step)) + [max(0, h - side)]))
            crops += [(x, y, x + side, y + side) for y in ys for x in xs]
        all_b, all_k, all_s = [], [], []
        for x0, y0, x1, y1 in crops:
            b, k, sc = self._run(np.ascontiguousarray(frame_rgb[y0:y1, x0:x1]))
            if len(sc):
                all_b.append(b + [x0, y0, x0, y0])
                all_k.append(k + [x0, y0])
                all_s.append(sc)
        if not all_s:
            return []
        from runtime.vision.pose_anchors import Detection, weighted_nms

        merged = weighted_nms([Detection(b, k, float(sc)) for b, k, sc in
                               zip(np.concatenate(all_b), np.concatenate(all_k), np.concatenate(all_s))],
                              self.iou_threshold)
        dets = []
        for box, kp, sc in ((d.box, d.keypoints, d.score) for d in merged):
            x0, y0 = max(0.0, box[0]), max(0.0, box[1])
            x1, y1 = min(float(w), box[2]), min(float(h), box[3])
            if x1 - x0 < 1 or y1 - y0 < 1:
                continue
            dets.append(PersonDetection(BoundingBox(x0, y0, x1, y1), kp, sc))
        return sorted(dets, key=lambda d: -d.score)
