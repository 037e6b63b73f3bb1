"""BlazePose detector post-processing: SSD anchors, box/keypoint decoding, weighted NMS, detection → ROI.

Reproduces MediaPipe's ``pose_detection`` graph (``SsdAnchorsCalculator``,
``TensorsToDetectionsCalculator``, ``NonMaxSuppressionCalculator`` WEIGHTED, and
``pose_detection_to_roi``: ``AlignmentPointsRectsCalculator`` + ``RectTransformationCalculator``).

Coordinates: the detector's own are normalised to its 224×224 input tensor (0..1, x right, y down);
:func:`detection_to_roi` works in full-frame pixels. An :class:`Roi` is a square rotated rectangle in
pixels: centre, side, rotation (radians, MediaPipe convention: positive turns the ROI's "up" clockwise
on screen, i.e. a tensor point (u, v) maps to ``centre + R(rotation) @ ((u - 0.5), (v - 0.5)) * size``).

Detector keypoints (4): 0 hip centre, 1 a point on the circle circumscribing the whole body
(hip centre → it gives scale and the body's up direction), 2 shoulder centre, 3 the upper-body circle point.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# pose_detection_cpu.pbtxt / SsdAnchorsCalculatorOptions
INPUT_SIZE = 224
STRIDES: tuple[int, ...] = (8, 16, 32, 32, 32)
ANCHOR_OFFSET = 0.5
N_ANCHORS = 2254
N_KEYPOINTS = 4
N_COORDS = 12
SCORE_CLIP = 100.0
MIN_SCORE = 0.5
NMS_IOU = 0.3
# pose_detection_to_roi.pbtxt
ROI_SCALE = 1.25
ROI_TARGET_ANGLE = math.pi / 2


def ssd_anchors(input_size: int = INPUT_SIZE, strides: tuple[int, ...] = STRIDES,
                anchors_per_scale: int = 2, offset: float = ANCHOR_OFFSET) -> np.ndarray:
    """Anchor centres (N, 2) as (x, y), normalised to the input tensor; width = height = 1 (fixed size).

    As ``SsdAnchorsCalculator``: consecutive layers with the same stride share one feature map; each
    layer contributes ``anchors_per_scale`` anchors per cell (aspect ratio 1.0 plus the interpolated
    scale), emitted row by row (y outer, x inner), all anchors of a cell together.
    """
    if input_size <= 0:
        raise ValueError(f"input_size: must be > 0, got {input_size}")
    if not strides or any(s <= 0 for s in strides):
        raise ValueError(f"strides: must be positive, got {strides}")
    out: list[np.ndarray] = []
    layer = 0
    while layer < len(strides):
        stride = strides[layer]
        n_layers = 0
        while layer < len(strides) and strides[layer] == stride:
            n_layers += 1
            layer += 1
        fm = int(math.ceil(input_size / stride))
        ys, xs = np.meshgrid((np.arange(fm) + offset) / fm, (np.arange(fm) + offset) / fm, indexing="ij")
        cells = np.stack([xs.ravel(), ys.ravel()], axis=1)
        out.append(np.repeat(cells, n_layers * anchors_per_scale, axis=0))
    return np.concatenate(out, axis=0)


ANCHORS = ssd_anchors()
assert ANCHORS.shape == (N_ANCHORS, 2)


@dataclass(frozen=True)
class Detection:
    """One detected person, normalised detector-tensor coordinates (0..1).

    box : (4,) x0, y0, x1, y1.  keypoints : (4, 2) x, y.  score : 0..1 (sigmoid).
    """

    box: np.ndarray
    keypoints: np.ndarray
    score: float


def decode_detections(raw_boxes: np.ndarray, raw_scores: np.ndarray, anchors: np.ndarray = ANCHORS,
                      min_score: float = MIN_SCORE, scale: float = float(INPUT_SIZE)) -> list[Detection]:
    """Candidate detections above ``min_score`` (before NMS), highest score first.

    ``raw_boxes`` (1, N, 12) or (N, 12): x, y, w, h offsets then 4 keypoint (x, y) offsets, all in input
    pixels relative to the anchor centre; ``raw_scores`` (1, N, 1) or (N,) logits (clipped to ±100).
    """
    boxes = np.asarray(raw_boxes, dtype=np.float64).reshape(-1, N_COORDS)
    logits = np.asarray(raw_scores, dtype=np.float64).reshape(-1)
    if boxes.shape[0] != anchors.shape[0] or logits.shape[0] != anchors.shape[0]:
        raise ValueError(f"raw detector outputs: expected {anchors.shape[0]} anchors, got boxes {boxes.shape}, "
                         f"scores {logits.shape}")
    scores = 1.0 / (1.0 + np.exp(-np.clip(logits, -SCORE_CLIP, SCORE_CLIP)))
    keep = np.flatnonzero(scores >= min_score)
    keep = keep[np.argsort(-scores[keep], kind="stable")]
    dets = []
    for i in keep:
        b = boxes[i]
        cx, cy = b[0] / scale + anchors[i, 0], b[1] / scale + anchors[i, 1]
        w, h = b[2] / scale, b[3] / scale
        kps = b[4:].reshape(N_KEYPOINTS, 2) / scale + anchors[i]
        dets.append(Detection(np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]), kps, float(scores[i])))
    return dets


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def weighted_nms(dets: list[Detection], iou_threshold: float = NMS_IOU) -> list[Detection]:
    """MediaPipe's WEIGHTED non-max suppression.

    Take the best remaining candidate, gather every remaining one overlapping it with IoU > threshold
    (itself included), replace box and keypoints by their score-weighted mean, keep the best score.
    """
    remaining = sorted(dets, key=lambda d: -d.score)
    out: list[Detection] = []
    while remaining:
        best = remaining[0]
        group = [d for d in remaining if _iou(best.box, d.box) > iou_threshold]
        rest = [d for d in remaining if _iou(best.box, d.box) <= iou_threshold]
        if best not in group:  # degenerate box (zero area): keep it alone
            group = [best]
            rest = remaining[1:]
        w = np.array([d.score for d in group])
        box = np.sum([d.box * s for d, s in zip(group, w)], axis=0) / w.sum()
        kps = np.sum([d.keypoints * s for d, s in zip(group, w)], axis=0) / w.sum()
        out.append(Detection(box, kps, best.score))
        remaining = rest
    return out


@dataclass(frozen=True)
class Roi:
    """Square rotated region in full-frame pixels: centre (cx, cy), side ``size``, ``rotation`` radians."""

    cx: float
    cy: float
    size: float
    rotation: float

    def __post_init__(self) -> None:
        vals = (self.cx, self.cy, self.size, self.rotation)
        if not all(math.isfinite(v) for v in vals):
            raise ValueError(f"roi: values must be finite, got {vals}")
        if self.size <= 0:
            raise ValueError(f"roi.size: must be > 0 px, got {self.size}")

    def tensor_to_image(self) -> np.ndarray:
        """2×3 affine: (u, v) normalised ROI-tensor coordinates (0..1) → full-frame pixels."""
        c, s = math.cos(self.rotation), math.sin(self.rotation)
        a = np.array([[c, -s], [s, c]]) * self.size
        t = np.array([self.cx, self.cy]) - a @ np.array([0.5, 0.5])
        return np.hstack([a, t[:, None]])

    def corners(self) -> np.ndarray:
        """(4, 2) pixel corners for tensor (0,0), (1,0), (1,1), (0,1)."""
        m = self.tensor_to_image()
        uv = np.array([[0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]], dtype=np.float64)
        return uv @ m.T


def normalize_radians(angle: float) -> float:
    """Angle wrapped to [-pi, pi)."""
    return angle - 2 * math.pi * math.floor((angle + math.pi) / (2 * math.pi))


def roi_from_keypoints(center_xy: np.ndarray, scale_xy: np.ndarray, scale: float = ROI_SCALE) -> Roi:
    """ROI from two pixel points: centre (hip centre) and the body-circle point.

    As ``AlignmentPointsRectsCalculator`` (side = 2·|p1 − p0|, rotation = π/2 − atan2(−(y1 − y0), x1 − x0),
    so an upright person, p1 straight above p0, gives rotation 0) then ``RectTransformationCalculator``
    (side × ``scale``, square).
    """
    p0 = np.asarray(center_xy, dtype=np.float64)
    p1 = np.asarray(scale_xy, dtype=np.float64)
    if p0.shape != (2,) or p1.shape != (2,) or not (np.all(np.isfinite(p0)) and np.all(np.isfinite(p1))):
        raise ValueError(f"keypoints: need two finite (x, y) pixel points, got {p0!r}, {p1!r}")
    side = 2.0 * float(np.hypot(*(p1 - p0)))
    if side <= 0:
        raise ValueError(f"keypoints: centre and scale points coincide at {p0.tolist()}: no ROI")
    rotation = normalize_radians(ROI_TARGET_ANGLE - math.atan2(-(p1[1] - p0[1]), p1[0] - p0[0]))
    return Roi(float(p0[0]), float(p0[1]), side * scale, rotation)


def letterbox_roi(width: int, height: int) -> Roi:
    """The detector's view of a whole frame: square of side max(W, H) centred on the frame, no rotation."""
    if width <= 0 or height <= 0:
        raise ValueError(f"frame size: must be positive, got {width}x{height}")
    return Roi(width / 2.0, height / 2.0, float(max(width, height)), 0.0)


def detection_to_roi(det: Detection, view: Roi) -> Roi:
    """Landmark-model ROI (pixels) of a detection made on the detector tensor ``view`` of the frame."""
    m = view.tensor_to_image()
    kps = np.hstack([det.keypoints, np.ones((N_KEYPOINTS, 1))]) @ m.T
    return roi_from_keypoints(kps[0], kps[1])
