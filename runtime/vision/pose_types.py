"""Types shared by every pose backend (BlazePose topology, 33 landmarks).

Frames: images are ``uint8`` arrays of shape (H, W, 3) in **RGB** order (OpenCV reads BGR:
convert at the source). Image coordinates are pixels, x right, y down, origin top-left.

BlazePose world landmarks are metres in BlazePose's own frame: origin at the midpoint of the
hips, x to the image's right, **y down**, z away from the camera (camera-aligned like OpenCV's camera
frame, right-handed, as published by MediaPipe). :mod:`runtime.vision.world` (world grounding)
converts them to the project frame (right-handed, z up).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from models.body.blazepose import BLAZEPOSE_33

#: BlazePose landmark names, index order of the model's output (defined once in ``models.body.blazepose``).
BLAZEPOSE_LANDMARKS: tuple[str, ...] = BLAZEPOSE_33
N_LANDMARKS = len(BLAZEPOSE_LANDMARKS)
#: Landmarks of the head (used to place the anonymisation region when no face is detected).
HEAD_LANDMARKS: tuple[int, ...] = tuple(range(0, 11))


@dataclass(frozen=True)
class BoundingBox:
    """Axis-aligned box in pixels: (x0, y0) top-left, (x1, y1) bottom-right, x1 > x0, y1 > y0."""

    x0: float
    y0: float
    x1: float
    y1: float

    def __post_init__(self) -> None:
        vals = (self.x0, self.y0, self.x1, self.y1)
        if not all(np.isfinite(v) for v in vals):
            raise ValueError(f"bbox: coordinates must be finite, got {vals}")
        if not (self.x1 > self.x0 and self.y1 > self.y0):
            raise ValueError(f"bbox: need x1 > x0 and y1 > y0, got {vals}")

    @property
    def center(self) -> tuple[float, float]:
        return (0.5 * (self.x0 + self.x1), 0.5 * (self.y0 + self.y1))

    @property
    def area(self) -> float:
        return (self.x1 - self.x0) * (self.y1 - self.y0)

    def iou(self, other: "BoundingBox") -> float:
        """Intersection over union with ``other`` (0..1)."""
        ix = max(0.0, min(self.x1, other.x1) - max(self.x0, other.x0))
        iy = max(0.0, min(self.y1, other.y1) - max(self.y0, other.y0))
        inter = ix * iy
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0


@dataclass
class PoseResult:
    """One person's pose in one frame.

    Attributes
    ----------
    image_xy : (33, 2) float64, pixels in the full frame.
    image_z : (33,) float64, BlazePose relative depth (same scale as x in pixels, hips ≈ 0).
    visibility : (33,) float64 in 0..1 (sigmoid of the model's visibility logit).
    presence : (33,) float64 in 0..1.
    world_xyz : (33, 3) float64, metres, BlazePose world frame (hips origin, y down).
    score : pose presence score of the landmark model, 0..1.
    bbox : box around the landmarks, pixels.
    t_capture_ns : capture timestamp of the frame, ns (CLOCK_MONOTONIC or the file's timeline).
    backend : name of the backend that produced it ("mediapipe", "onnx-cpu", "onnx-tensorrt", ...).
    """

    image_xy: np.ndarray
    image_z: np.ndarray
    visibility: np.ndarray
    presence: np.ndarray
    world_xyz: np.ndarray
    score: float
    bbox: BoundingBox
    t_capture_ns: int = 0
    backend: str = ""
    extras: dict = field(default_factory=dict)


class PoseBackend(Protocol):
    """A single-person pose estimator: a detector plus a landmark model with ROI tracking."""

    name: str

    def infer(self, frame_rgb: np.ndarray, t_capture_ns: int, roi: BoundingBox | None = None) -> PoseResult | None:
        """Landmarks of the person in ``roi`` (or the detector's best person when None); None when nobody."""
        ...

    def reset(self) -> None:
        """Forget the tracked ROI (the next call runs the detector)."""
        ...
