"""Prompts that name the person to follow and describe them.

* a 2D bounding box (pixels, ``"x0,y0,x1,y1"``) — :func:`parse_bbox`;
* a segmentation mask → its box — :func:`mask_to_bbox`; the mask can come from MediaPipe's bundled
  selfie segmenter (:func:`selfie_mask`) or from the pose model's own person mask
  (``MediaPipePose(enable_segmentation=True)``), picked by a point on the person
  (:func:`mask_prompt_from_point`);
* anthropometric text (``"tall male, 1.85 m, 90 kg"``, ``"woman 60kg 165cm"``, ``5'11"``,
  ``"180 lb"``) → :class:`SubjectAttributes` (height m, mass kg, sex), usable by
  :class:`models.body.scaling.SubjectScale`;
* interaction labels of the seed (``"close contact"``, ``"occlusion"``) → :class:`Interaction`,
  which relaxes the tracker's gates and lets it hold a prediction longer
  (:mod:`runtime.vision.tracking`).

Nothing is guessed: a description without a number leaves that attribute ``None`` (``"tall"`` is
kept as a word, not turned into a height).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

from runtime.vision.pose_types import BoundingBox

#: Same bounds as models.body.scaling / runtime.core.config.SubjectProfile.
MASS_RANGE_KG = (20.0, 250.0)
HEIGHT_RANGE_M = (0.5, 2.5)
_LB_KG = 0.45359237
_IN_M = 0.0254


# -- bounding box --------------------------------------------------------------------------------

def parse_bbox(text: str, width: int | None = None, height: int | None = None) -> BoundingBox:
    """``"x0,y0,x1,y1"`` (pixels) → :class:`BoundingBox`; checked against the frame size when given."""
    parts = [p.strip() for p in str(text).split(",")]
    if len(parts) != 4:
        raise ValueError(f"bbox: expected 4 comma-separated numbers x0,y0,x1,y1, got {text!r}")
    vals = []
    for name, p in zip(("x0", "y0", "x1", "y1"), parts):
        try:
            v = float(p)
        except ValueError:
            raise ValueError(f"bbox.{name}: not a number: {p!r}") from None
        if not math.isfinite(v):
            raise ValueError(f"bbox.{name}: must be finite, got {p!r}")
        vals.append(v)
    x0, y0, x1, y1 = vals
    if x1 <= x0:
        raise ValueError(f"bbox.x1: must be greater than x0={x0:g}, got {x1:g}")
    if y1 <= y0:
        raise ValueError(f"bbox.y1: must be greater than y0={y0:g}, got {y1:g}")
    if width is not None and (x0 < 0 or x1 > width):
        raise ValueError(f"bbox.x: {x0:g}..{x1:g} is outside the frame width 0..{width}")
    if height is not None and (y0 < 0 or y1 > height):
        raise ValueError(f"bbox.y: {y0:g}..{y1:g} is outside the frame height 0..{height}")
    return BoundingBox(x0, y0, x1, y1)


# -- mask ----------------------------------------------------------------------------------------

def mask_to_bbox(mask: np.ndarray, threshold: float = 0.5, point: tuple[float, float] | None = None,
                 min_pixels: int = 50) -> BoundingBox:
    """Box (pixels) of a person mask: the connected component containing ``point`` (x, y), or the
    largest one. ``mask``: (H, W) bool, uint8 (0/255 or 0/1) or float in 0..1; ``threshold`` on 0..1."""
    import cv2

    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"mask: expected a 2-D (H, W) array, got shape {m.shape}")
    if m.dtype == np.uint8 and m.max(initial=0) > 1:
        m = m.astype(np.float32) / 255.0
    binary = (m.astype(np.float32) >= threshold).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    if n <= 1:
        raise ValueError(f"mask: no pixel at or above threshold {threshold}")
    if point is not None:
        x, y = int(round(point[0])), int(round(point[1]))
        if not (0 <= x < m.shape[1] and 0 <= y < m.shape[0]):
            raise ValueError(f"point: ({point[0]}, {point[1]}) is outside the {m.shape[1]}x{m.shape[0]} mask")
        label = int(labels[y, x])
        if label == 0:
            raise ValueError(f"point: ({point[0]}, {point[1]}) is not on the mask")
    else:
        label = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    if stats[label, cv2.CC_STAT_AREA] < min_pixels:
        raise ValueError(f"mask: component of {stats[label, cv2.CC_STAT_AREA]} pixels is below min_pixels={min_pixels}")
    x0, y0 = stats[label, cv2.CC_STAT_LEFT], stats[label, cv2.CC_STAT_TOP]
    return BoundingBox(float(x0), float(y0), float(x0 + stats[label, cv2.CC_STAT_WIDTH]),
                       float(y0 + stats[label, cv2.CC_STAT_HEIGHT]))


def selfie_mask(frame_rgb: np.ndarray, landscape: bool = True) -> np.ndarray:
    """MediaPipe's bundled selfie segmenter on an RGB frame → (H, W) float32 person probability 0..1."""
    import mediapipe as mp

    if frame_rgb.ndim != 3 or frame_rgb.shape[2] != 3 or frame_rgb.dtype != np.uint8:
        raise ValueError(f"frame_rgb: expected an (H, W, 3) uint8 RGB array, got {frame_rgb.shape} {frame_rgb.dtype}")
    with mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=1 if landscape else 0) as seg:
        res = seg.process(np.ascontiguousarray(frame_rgb))
    return np.asarray(res.segmentation_mask, dtype=np.float32)


def mask_prompt_from_point(frame_rgb: np.ndarray, point: tuple[float, float], source: str = "pose",
                           threshold: float = 0.5) -> tuple[BoundingBox, np.ndarray]:
    """A mask prompt from a click on the person: segment, keep the component under ``point``.

    ``source``: "pose" (the BlazePose segmentation mask, run on a crop around the point whose side
    is the frame height) or "selfie" (the selfie segmenter on the whole frame; made for people
    close to the camera). Returns (bbox, mask).
    """
    h, w = frame_rgb.shape[:2]
    if source == "selfie":
        mask = selfie_mask(frame_rgb)
    elif source == "pose":
        from runtime.vision.pose_mediapipe import MediaPipePose

        half = 0.5 * min(h, w)
        roi = BoundingBox(max(0.0, point[0] - half), max(0.0, point[1] - half),
                          min(float(w), point[0] + half), min(float(h), point[1] + half))
        with MediaPipePose(enable_segmentation=True, roi_margin=0.0) as pose:
            res = pose.infer(frame_rgb, 0, roi)
        if res is None or "segmentation" not in res.extras:
            raise ValueError(f"point: no person found around ({point[0]}, {point[1]})")
        mask = res.extras["segmentation"]
    else:
        raise ValueError(f"source: 'pose' or 'selfie', got {source!r}")
    return mask_to_bbox(mask, threshold=threshold, point=point), mask


# -- anthropometric text ---------------------------------------------------------------------------

@dataclass(frozen=True)
class SubjectAttributes:
    """Subject attributes read from text: ``height_m`` (m), ``mass_kg`` (kg), ``sex`` ("male",
    "female" or None), ``words`` (descriptive words kept as given, e.g. "tall")."""

    height_m: float | None = None
    mass_kg: float | None = None
    sex: str | None = None
    words: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.height_m is not None and not (HEIGHT_RANGE_M[0] <= self.height_m <= HEIGHT_RANGE_M[1]):
            raise ValueError(f"height_m: {self.height_m:g} m is outside {HEIGHT_RANGE_M[0]:g}..{HEIGHT_RANGE_M[1]:g} m")
        if self.mass_kg is not None and not (MASS_RANGE_KG[0] <= self.mass_kg <= MASS_RANGE_KG[1]):
            raise ValueError(f"mass_kg: {self.mass_kg:g} kg is outside {MASS_RANGE_KG[0]:g}..{MASS_RANGE_KG[1]:g} kg")
        if self.sex not in (None, "male", "female"):
            raise ValueError(f"sex: 'male', 'female' or None, got {self.sex!r}")

    def to_subject_scale(self):
        """A :class:`models.body.scaling.SubjectScale` (needs both height and mass)."""
        from models.body.scaling import SubjectScale

        missing = [n for n in ("height_m", "mass_kg") if getattr(self, n) is None]
        if missing:
            raise ValueError(f"description: no {' and no '.join(missing)} given; scaling needs both "
                             "(e.g. '1.85 m, 90 kg')")
        return SubjectScale(mass_kg=self.mass_kg, height_m=self.height_m)


_NUM = r"(\d+(?:[.,]\d+)?)"
_RE_FT_IN = re.compile(r"(\d)\s*(?:'|ft|feet|foot)\s*(?:(\d{1,2}(?:\.\d+)?)\s*(?:\"|''|in|inch|inches)?)?", re.I)
_RE_HEIGHT = re.compile(_NUM + r"\s*(m|cm|mm)\b", re.I)
_RE_MASS = re.compile(_NUM + r"\s*(kg|kgs|kilograms?|lbs?|pounds?)\b", re.I)
_SEX_WORDS = {"male": "male", "man": "male", "boy": "male", "gentleman": "male", "m": None,
              "female": "female", "woman": "female", "girl": "female", "lady": "female"}
_DESCRIPTIVE = ("tall", "short", "slim", "thin", "heavy", "stocky", "athletic", "old", "young", "elderly")


def _num(s: str) -> float:
    return float(s.replace(",", "."))


def parse_description(text: str) -> SubjectAttributes:
    """Anthropometric text → :class:`SubjectAttributes` (metres, kilograms).

    Units: ``m``, ``cm``, ``mm``, feet/inches (``5'11"``, ``5 ft 11 in``) for height; ``kg``,
    ``lb`` for mass. A number without a unit, two heights, two masses or two sexes are errors
    naming the field and the values.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"description: empty text {text!r}")
    t = text.strip()
    rest = t
    heights: list[tuple[float, str]] = []
    for m in _RE_FT_IN.finditer(t):
        ft = int(m.group(1))
        inch = float(m.group(2)) if m.group(2) else 0.0
        heights.append(((12 * ft + inch) * _IN_M, m.group(0).strip()))
    rest = _RE_FT_IN.sub(" ", rest)
    for m in _RE_HEIGHT.finditer(rest):
        v, unit = _num(m.group(1)), m.group(2).lower()
        heights.append((v * {"m": 1.0, "cm": 0.01, "mm": 0.001}[unit], m.group(0)))
    rest = _RE_HEIGHT.sub(" ", rest)
    masses: list[tuple[float, str]] = []
    for m in _RE_MASS.finditer(rest):
        v, unit = _num(m.group(1)), m.group(2).lower()
        masses.append((v * (_LB_KG if unit.startswith(("lb", "pound")) else 1.0), m.group(0)))
    rest = _RE_MASS.sub(" ", rest)
    stray = re.findall(r"\d+(?:[.,]\d+)?", rest)
    if stray:
        raise ValueError(f"description: number(s) {stray} without a unit in {text!r} (use m/cm/ft-in, kg/lb)")
    if len(heights) > 1:
        raise ValueError(f"description.height: given {len(heights)} times ({', '.join(s for _, s in heights)})")
    if len(masses) > 1:
        raise ValueError(f"description.mass: given {len(masses)} times ({', '.join(s for _, s in masses)})")
    words = [w.lower() for w in re.findall(r"[A-Za-z]+", rest)]
    sexes = {_SEX_WORDS[w] for w in words if _SEX_WORDS.get(w)}
    if len(sexes) > 1:
        raise ValueError(f"description.sex: contradictory words in {text!r}")
    height = round(heights[0][0], 4) if heights else None
    mass = round(masses[0][0], 3) if masses else None
    if height is not None and not (HEIGHT_RANGE_M[0] <= height <= HEIGHT_RANGE_M[1]):
        raise ValueError(f"description.height: {heights[0][1]!r} = {height:g} m is outside "
                         f"{HEIGHT_RANGE_M[0]:g}..{HEIGHT_RANGE_M[1]:g} m")
    if mass is not None and not (MASS_RANGE_KG[0] <= mass <= MASS_RANGE_KG[1]):
        raise ValueError(f"description.mass: {masses[0][1]!r} = {mass:g} kg is outside "
                         f"{MASS_RANGE_KG[0]:g}..{MASS_RANGE_KG[1]:g} kg")
    return SubjectAttributes(height_m=height, mass_kg=mass, sex=next(iter(sexes)) if sexes else None,
                             words=tuple(w for w in words if w in _DESCRIPTIVE))


# -- interaction labels ------------------------------------------------------------------------------

#: label → canonical name; the seed's labels plus their common spellings.
_INTERACTION_WORDS = {
    "close contact": "close_contact", "close-contact": "close_contact", "close_contact": "close_contact",
    "contact": "close_contact", "occlusion": "occlusion", "occluded": "occlusion", "occlusions": "occlusion",
    "crossing": "occlusion",
}


@dataclass(frozen=True)
class Interaction:
    """What the scene will do to the tracked person; relaxes :class:`runtime.vision.tracking.PromptedTracker`.

    ``close_contact``: another person overlaps the target (IoU gate off, appearance gate wider,
    the template is not updated while someone overlaps). ``occlusion``: the target disappears
    behind things (the prediction is held longer before the track is declared lost).
    """

    close_contact: bool = False
    occlusion: bool = False
    labels: tuple[str, ...] = field(default_factory=tuple)


def parse_interactions(text: str | None) -> Interaction:
    """Interaction labels found in ``text`` (case-insensitive; other words ignored)."""
    if not text:
        return Interaction()
    low = text.lower()
    found = []
    for word in sorted(_INTERACTION_WORDS, key=len, reverse=True):
        if re.search(r"\b" + re.escape(word) + r"\b", low):
            canon = _INTERACTION_WORDS[word]
            if canon not in found:
                found.append(canon)
            low = re.sub(r"\b" + re.escape(word) + r"\b", " ", low)
    return Interaction(close_contact="close_contact" in found, occlusion="occlusion" in found, labels=tuple(found))


def split_description(text: str) -> tuple[SubjectAttributes, Interaction]:
    """``--describe`` text → (subject attributes, interaction labels); labels are removed before parsing."""
    inter = parse_interactions(text)
    rest = text
    for word in sorted(_INTERACTION_WORDS, key=len, reverse=True):
        rest = re.sub(r"\b" + re.escape(word) + r"\b", " ", rest, flags=re.I)
    if not re.search(r"[A-Za-z0-9]", rest):
        return SubjectAttributes(), inter
    return parse_description(rest), inter
