"""Follow the prompted person through crossings and occlusions, never switching identity.

Per frame:

1. **Predict** the target's box with a constant-velocity model (pixels per frame, from the
   smoothed motion of the box centre) for the frames elapsed since it was last seen.
2. **Candidates**: every person the BlazePose detector finds (tiled, all of them:
   :class:`runtime.vision.pose_mediapipe.PoseDetector`) whose body lies inside the search gate,
   plus the predicted box itself; the pose model runs on each candidate ROI (static mode, so
   nothing carries over from another person) and gives landmarks and a landmark box.
3. **Associate** each candidate with the target by (a) distance of the box centres from the
   prediction in units of the target's height, (b) IoU with the prediction, (c) appearance: the
   Bhattacharyya distance between HSV (hue × saturation) histograms of the torso and thigh
   regions (polygons from the landmarks) and the target's template, and (d) height ratio. A
   candidate that fails any gate is not the target. The best passing candidate is taken.
4. If none passes, the frame is reported **lost** (no pose; the prediction is kept for the
   search). The gate grows with the frames lost up to a cap and the prediction is extrapolated
   at most ``max_extrapolate`` frames, so a track that lost its person does not jump to someone
   far away; it re-acquires only a candidate that passes the appearance gate.

The template (histograms) is updated slowly (``template_rate``) and only when no other person
overlaps the target. Interaction labels (:class:`runtime.vision.prompts.Interaction`) relax it:
``close_contact`` drops the IoU requirement and widens the appearance gate; ``occlusion`` holds
the prediction and the gate growth three times longer.

MediaPipe's own video-mode tracker, in contrast, follows whichever person its ROI slides onto
and switches from the woman to the man in the ``sports2d`` demo.

**Detector only when needed** (``TrackerSettings.detector = "when_needed"``, the default with a backend
that tracks its own ROI: :class:`runtime.vision.pose_onnx.OnnxPose`): while the previous frame was tracked,
the landmark model first runs on the ROI from the previous frame's landmarks alone; when its pose score
stays ≥ ``min_tracking_confidence`` and the result passes the same gates (distance, IoU, appearance, height)
the frame is done — no detector, no other candidate. The detector (and the full association above) runs
when the track was lost, the score dropped, or a gate failed; each run is counted
(``PromptedTracker.detector_runs``, ``TrackFrame.detector_ran``). The appearance template is updated only on
frames where the detector ran (only then is it known that nobody overlaps the target). With
``"every_frame"`` (the mediapipe backend, whose ROI mode does not track) the detector runs on every frame.

:func:`make_tracker` picks the backend: ONNX when its models are built (``make pose-models``), else mediapipe
with the reason printed.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field

import numpy as np

from runtime.vision.pose_types import BoundingBox, PoseResult
from runtime.vision.prompts import Interaction

_TORSO = (11, 12, 24, 23)  # left shoulder, right shoulder, right hip, left hip
_THIGHS = ((23, 25), (24, 26))  # hip -> knee, both sides


def _region_hist(hsv: np.ndarray, polygon: np.ndarray) -> np.ndarray | None:
    import cv2

    h, w = hsv.shape[:2]
    poly = np.round(polygon).astype(np.int32)
    x0, y0 = np.clip(poly.min(axis=0), 0, [w - 1, h - 1])
    x1, y1 = np.clip(poly.max(axis=0) + 1, 1, [w, h])
    if x1 - x0 < 3 or y1 - y0 < 3:
        return None
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(mask, [poly - [x0, y0]], 255)
    if int(mask.sum()) // 255 < 30:
        return None
    hist = cv2.calcHist([np.ascontiguousarray(hsv[y0:y1, x0:x1])], [0, 1], mask, [8, 4], [0, 180, 0, 256])
    s = float(hist.sum())
    return (hist / s).astype(np.float32) if s > 0 else None


def appearance_rgb(frame_rgb: np.ndarray, pose: PoseResult) -> dict[str, np.ndarray]:
    """:func:`appearance` converting only the part of the RGB frame its regions cover to HSV (same values)."""
    import cv2

    xy = np.asarray(pose.image_xy, dtype=np.float64)
    pts = [xy[list(_TORSO)]]
    for hip, knee in _THIGHS:
        a, b = xy[hip], xy[knee]
        d = b - a
        n = np.array([-d[1], d[0]]) / max(np.hypot(*d), 1e-9) * 0.18 * np.hypot(*d)
        pts.append(np.array([a + n, a - n, b - n, b + n]))
    allp = np.concatenate(pts)
    allp = allp[np.all(np.isfinite(allp), axis=1)]
    if allp.size == 0:
        return {}
    h, w = frame_rgb.shape[:2]
    x0, y0 = np.clip(np.floor(allp.min(axis=0)).astype(int) - 2, 0, [w - 1, h - 1])
    x1, y1 = np.clip(np.ceil(allp.max(axis=0)).astype(int) + 3, 1, [w, h])
    hsv = cv2.cvtColor(np.ascontiguousarray(frame_rgb[y0:y1, x0:x1]), cv2.COLOR_RGB2HSV)
    from dataclasses import replace

    return appearance(hsv, replace(pose, image_xy=xy - [x0, y0]))


def appearance(frame_hsv: np.ndarray, pose: PoseResult) -> dict[str, np.ndarray]:
    """HSV histograms (8 hue × 4 saturation bins, normalised) of the torso and each thigh region."""
    xy = np.asarray(pose.image_xy, dtype=np.float64)
    out = {}
    torso = xy[list(_TORSO)]
    if np.all(np.isfinite(torso)):
        h = _region_hist(frame_hsv, torso)
        if h is not None:
            out["torso"] = h
    for side, (hip, knee) in zip(("left_thigh", "right_thigh"), _THIGHS):
        a, b = xy[hip], xy[knee]
        if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
            continue
        d = b - a
        n = np.array([-d[1], d[0]]) / max(np.hypot(*d), 1e-9) * 0.18 * np.hypot(*d)
        h = _region_hist(frame_hsv, np.array([a + n, a - n, b - n, b + n]))
        if h is not None:
            out[side] = h
    return out


def grow_box(box: BoundingBox, margin: float) -> BoundingBox:
    """``box`` grown by ``margin`` × its size on every side."""
    w, h = box.x1 - box.x0, box.y1 - box.y0
    return BoundingBox(box.x0 - margin * w, box.y0 - margin * h, box.x1 + margin * w, box.y1 + margin * h)


def _contains(box: BoundingBox, point: tuple[float, float]) -> bool:
    return box.x0 <= point[0] <= box.x1 and box.y0 <= point[1] <= box.y1


def appearance_distance(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    """Mean Bhattacharyya distance (0 same … 1 disjoint) over the regions both have; 1 when none."""
    import cv2

    common = [k for k in a if k in b]
    if not common:
        return 1.0
    return float(np.mean([cv2.compareHist(a[k], b[k], cv2.HISTCMP_BHATTACHARYYA) for k in common]))


@dataclass
class TrackerSettings:
    """Gates and rates of :class:`PromptedTracker` (distances in target heights, per frame)."""

    gate_distance: float = 0.5          # centre distance / target height, at 0 frames lost
    gate_growth: float = 0.05           # added per frame lost
    gate_distance_max: float = 1.2
    min_iou: float = 0.05               # ... or IoU with the prediction at least this (either passes)
    appearance_max: float = 0.75        # Bhattacharyya distance gate (8x4 H-S bins)
    height_ratio: tuple[float, float] = (0.6, 1.6)
    max_extrapolate: int = 10           # frames the constant-velocity prediction runs on
    velocity_rate: float = 0.5          # EMA factor of the velocity estimate
    template_rate: float = 0.1          # EMA factor of the appearance template
    overlap_iou: float = 0.2            # another person above this IoU: no template update
    detector: str = "every_frame"       # or "when_needed": see the module docstring
    min_tracking_confidence: float = 0.5  # "when_needed": pose score below this runs the detector
    # live bounds (off by default): the detector on a crop around the prediction before the tiled search, no tiled
    # search at start when the prompt box gives the person, and while lost beyond max_extrapolate frames the tiled
    # search only every lost_search_every-th frame (each tiled search is four detector runs, ≈ 55 ms here)
    roi_search: bool = False
    lost_search_every: int = 1
    # live bound on the search itself (0: off): at most this many of the detector's views (whole frame, then its
    # tiles) per frame, cycling over frames, and at most one candidate posed per frame; the crop search
    # (roi_search) runs on the frame after the tracked ROI failed, not on the same one. A frame then costs at
    # most two model runs (≈ 26 ms here) instead of the whole tiled search (four detector runs plus one landmark
    # run per person, 60-125 ms measured on the sports2d clip), which dropped camera frames at 30 fps.
    search_views_per_frame: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.lost_search_every, int) or self.lost_search_every < 1:
            raise ValueError(f"lost_search_every: must be an integer ≥ 1 (frames), got {self.lost_search_every!r}")
        if (isinstance(self.search_views_per_frame, bool) or not isinstance(self.search_views_per_frame, int)
                or self.search_views_per_frame < 0):
            raise ValueError("search_views_per_frame: must be an integer ≥ 0 (0: the whole search in one frame), "
                             f"got {self.search_views_per_frame!r}")
        if self.detector not in ("every_frame", "when_needed"):
            raise ValueError(f"detector: 'every_frame' or 'when_needed', got {self.detector!r}")
        if not 0.0 <= self.min_tracking_confidence <= 1.0:
            raise ValueError(f"min_tracking_confidence: must be within 0..1, got {self.min_tracking_confidence}")

    def relaxed(self, interaction: Interaction) -> "TrackerSettings":
        """These settings relaxed for the interaction labels (see the module docstring)."""
        s = TrackerSettings(**self.__dict__)
        if interaction.close_contact:
            s.min_iou = 0.0
            s.appearance_max = min(0.9, self.appearance_max + 0.1)
            s.height_ratio = (0.5, 2.0)
        if interaction.occlusion:
            s.max_extrapolate = 3 * self.max_extrapolate
            s.gate_growth = self.gate_growth / 3.0
        return s


@dataclass
class TrackFrame:
    """The tracker's answer for one frame.

    ``status``: "tracked" (``pose`` is the target's) or "lost" (no pose; ``bbox`` is None).
    ``predicted``: the constant-velocity prediction used for the search (pixels).
    ``appearance_distance``, ``center_distance`` (target heights), ``iou``: of the chosen
    candidate (NaN when lost). ``candidates``: how many poses were compared. ``others``: boxes
    of the other people found (detector body ROIs not taken). ``heads``: head boxes of every
    person the detector found in the frame, the target included (for the anonymiser).
    """

    index: int
    t_capture_ns: int
    status: str
    pose: PoseResult | None
    bbox: BoundingBox | None
    predicted: BoundingBox | None
    appearance_distance: float = float("nan")
    center_distance: float = float("nan")
    iou: float = float("nan")
    candidates: int = 0
    others: list[BoundingBox] = field(default_factory=list)
    heads: list[BoundingBox] = field(default_factory=list)
    detector_ran: bool = True


class PromptedTracker:
    """Tracks the person under a box prompt; see the module docstring.

    ``pose``: a backend with ROI inference (:class:`runtime.vision.pose_mediapipe.MediaPipePose`);
    ``detector``: a multi-person detector with ``detect(frame) -> [PersonDetection]``
    (:class:`runtime.vision.pose_mediapipe.PoseDetector`).
    """

    def __init__(self, pose, detector, settings: TrackerSettings | None = None,
                 interaction: Interaction | None = None) -> None:
        self.pose, self.detector = pose, detector
        self.interaction = interaction or Interaction()
        self.settings = (settings or TrackerSettings()).relaxed(self.interaction)
        self._box: BoundingBox | None = None
        self._velocity = np.zeros(2)
        self._template: dict[str, np.ndarray] | None = None
        self._last_index: int | None = None
        self._lost = 0
        self.detector_runs = 0
        self._view_cursor = 0       # next detector view of the bounded search (search_views_per_frame)
        self.history: list[TrackFrame] = []

    def _detect(self, frame_rgb: np.ndarray) -> list:
        self.detector_runs += 1
        return self.detector.detect(frame_rgb)

    def _gates(self, p: PoseResult, pred: BoundingBox, appearance_d: float, gate: float,
               lost_frames: int) -> tuple[bool, float, float, float]:
        """(passes, centre distance / height, IoU, ratio) of candidate ``p`` against the prediction."""
        s = self.settings
        height = pred.y1 - pred.y0
        d = float(np.hypot(*(np.subtract(p.bbox.center, pred.center)))) / height
        iou = p.bbox.iou(pred)
        ratio = (p.bbox.y1 - p.bbox.y0) / height
        ok = (d <= gate and (iou >= s.min_iou or lost_frames > 0)
              and appearance_d <= s.appearance_max and s.height_ratio[0] <= ratio <= s.height_ratio[1])
        return ok, d, iou, ratio

    # -- start ---------------------------------------------------------------------------------
    def start(self, frame_rgb: np.ndarray, index: int, t_capture_ns: int, prompt: BoundingBox) -> TrackFrame:
        """Lock on to the person inside ``prompt`` (pixels) in this frame; ValueError when there is none."""
        import cv2

        if self.settings.search_views_per_frame and hasattr(self.pose, "seed_track"):
            self.pose.seed_track(prompt)    # bounded: landmarks on the prompt box first, the detector only if needed
        best: PoseResult | None = self.pose.infer(frame_rgb, t_capture_ns, prompt)
        found = best is not None and best.bbox.iou(prompt) >= 0.1
        # every person: their heads go to the anonymiser too (skipped by roi_search when the prompt gave the person)
        detections = [] if (found and self.settings.roi_search) else self._detect(frame_rgb)
        if not found:
            for det in detections:
                if det.body.iou(prompt) > 0.1:
                    cand = self.pose.infer(frame_rgb, t_capture_ns, det.body)
                    if cand is not None and (best is None or cand.bbox.iou(prompt) > best.bbox.iou(prompt)):
                        best = cand
        if best is None or best.bbox.iou(prompt) < 0.1:
            raise ValueError(f"bbox: no person found inside the prompt {prompt} in frame {index}")
        if self.settings.search_views_per_frame:   # bounded: only the regions' pixels to HSV (same values)
            self._template = appearance_rgb(frame_rgb, best)
        else:
            self._template = appearance(cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2HSV), best)
        if not self._template:
            raise ValueError(f"bbox: the person in {prompt} shows no torso or thigh to learn their appearance from")
        if hasattr(self.pose, "track_from"):
            self.pose.track_from(best)
        self._box, self._velocity, self._last_index, self._lost = best.bbox, np.zeros(2), index, 0
        others = [det.body for det in detections if not _contains(grow_box(best.bbox, 0.1), det.hip_center)]
        tf = TrackFrame(index, t_capture_ns, "tracked", best, best.bbox, prompt, 0.0, 0.0, best.bbox.iou(prompt), 1,
                        others, [det.head for det in detections])
        self.history.append(tf)
        return tf

    # -- per frame -----------------------------------------------------------------------------
    def _prediction(self, index: int) -> BoundingBox:
        assert self._box is not None and self._last_index is not None
        dt = min(index - self._last_index, self.settings.max_extrapolate)
        dx, dy = self._velocity * dt
        b = self._box
        return BoundingBox(b.x0 + dx, b.y0 + dy, b.x1 + dx, b.y1 + dy)

    def update(self, frame_rgb: np.ndarray, index: int, t_capture_ns: int) -> TrackFrame:
        """The target in this frame (``index`` must increase; frames may be skipped)."""
        import cv2

        if self._box is None or self._last_index is None:
            raise RuntimeError("tracker: call start() with a prompt first")
        if index <= self._last_index:
            raise ValueError(f"index: frames must move forward, got {index} after {self._last_index}")
        s = self.settings
        pred = self._prediction(index)
        height = pred.y1 - pred.y0
        lost_frames = self._lost  # consecutive processed frames without the target
        gate = min(s.gate_distance + s.gate_growth * lost_frames, s.gate_distance_max)
        h_img, w_img = frame_rgb.shape[:2]
        in_view = pred.x1 > 0 and pred.y1 > 0 and pred.x0 < w_img and pred.y0 < h_img
        tracking_backend = hasattr(self.pose, "track_from")
        if s.lost_search_every > 1 and lost_frames > s.max_extrapolate and lost_frames % s.lost_search_every:
            self._lost += 1         # bounded re-acquisition: no search this frame
            tf = TrackFrame(index, t_capture_ns, "lost", None, None, pred, detector_ran=False)
            self.history.append(tf)
            return tf
        first: PoseResult | None = None
        tried = s.detector == "when_needed" and tracking_backend and lost_frames == 0 and in_view
        if tried:
            try:
                first = self.pose.infer(frame_rgb, t_capture_ns, pred)
            except ValueError:
                first = None
            if first is not None and first.extras.get("roi_source") == "tracking" \
                    and first.score >= s.min_tracking_confidence:
                app = appearance_distance(appearance_rgb(frame_rgb, first), self._template or {})
                ok, d, iou, _ = self._gates(first, pred, app, gate, lost_frames)
                if ok:
                    return self._accept(first, index, t_capture_ns, pred, app, d, iou, 1, [], [], False)
        if s.search_views_per_frame and tracking_backend and hasattr(self.detector, "detect_view"):
            return self._bounded_search(frame_rgb, index, t_capture_ns, pred, gate, lost_frames, in_view, tried)
        if s.roi_search and tracking_backend and in_view:
            found = self._roi_search(frame_rgb, index, t_capture_ns, pred, gate, lost_frames)
            if found is not None:
                return found

        detections = self._detect(frame_rgb)
        hsv = cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2HSV)
        cands: list[PoseResult] = []

        def run(roi: BoundingBox, fresh: bool) -> None:
            if fresh and tracking_backend:
                self.pose.reset()   # a candidate's own detection, not the ROI tracked from another person
            try:
                p = self.pose.infer(frame_rgb, t_capture_ns, roi)
            except ValueError:  # ROI entirely outside the frame
                return
            if p is not None and not any(p.bbox.iou(c.bbox) > 0.6 for c in cands):
                cands.append(p)

        if first is not None:
            cands.append(first)
        elif in_view and not tried:   # (tried: the backend already searched the predicted box and found nobody)
            run(pred, fresh=False)
        pcx, pcy = pred.center
        for det in detections:
            cx, cy = det.hip_center
            if np.hypot(cx - pcx, cy - pcy) / height > gate + 0.5:  # the hip may sit off the box centre
                continue
            if any(_contains(grow_box(c.bbox, 0.1), (cx, cy)) for c in cands):
                continue  # this detection is a person already posed
            run(det.body, fresh=True)
        scored = []
        for p in cands:
            app = appearance_distance(appearance(hsv, p), self._template or {})
            ok, d, iou, _ = self._gates(p, pred, app, gate, lost_frames)
            scored.append((d + app + 0.5 * (1.0 - iou), ok, p, d, iou, app))
        passing = sorted((x for x in scored if x[1]), key=lambda x: x[0])
        heads = [det.head for det in detections]
        if not passing:
            if tracking_backend:
                self.pose.reset()
            self._lost += 1
            tf = TrackFrame(index, t_capture_ns, "lost", None, None, pred, candidates=len(cands),
                            others=[det.body for det in detections], heads=heads)
            self.history.append(tf)
            return tf
        _, _, best, d, iou, app = passing[0]
        others = [det.body for det in detections if not _contains(grow_box(best.bbox, 0.1), det.hip_center)]
        crowded = any(p is not best and p.bbox.iou(best.bbox) > s.overlap_iou for _, _, p, *_ in scored)
        if not crowded and s.template_rate > 0:
            new = appearance(hsv, best)
            for k, v in new.items():
                old = self._template.get(k)
                self._template[k] = v if old is None else ((1 - s.template_rate) * old + s.template_rate * v)
        if tracking_backend:
            self.pose.track_from(best)
        return self._accept(best, index, t_capture_ns, pred, app, d, iou, len(cands), others, heads, True)

    def _lost_frame(self, index: int, t_capture_ns: int, pred: BoundingBox, detector_ran: bool, candidates: int = 0,
                    others: list[BoundingBox] | None = None, heads: list[BoundingBox] | None = None) -> TrackFrame:
        """Record a lost frame (the backend's ROI forgotten)."""
        self.pose.reset()
        self._lost += 1
        tf = TrackFrame(index, t_capture_ns, "lost", None, None, pred, candidates=candidates, others=others or [],
                        heads=heads or [], detector_ran=detector_ran)
        self.history.append(tf)
        return tf

    def _bounded_search(self, frame_rgb: np.ndarray, index: int, t_capture_ns: int, pred: BoundingBox, gate: float,
                        lost_frames: int, in_view: bool, tried: bool) -> TrackFrame:
        """``search_views_per_frame``: the search when the tracked ROI did not give the target, at most two model
        runs this frame. The frame whose tracked ROI failed ends there (lost; one run spent). Then, while the
        prediction is in view and within ``max_extrapolate`` frames, the crop search around it (one detector and
        one landmark run); otherwise the next ``search_views_per_frame`` detector views (cycling over the
        frame's views) and the one detection nearest the prediction inside the gate posed and gated."""
        s = self.settings
        if tried:
            return self._lost_frame(index, t_capture_ns, pred, detector_ran=False)
        if s.roi_search and in_view and lost_frames <= s.max_extrapolate:
            found = self._roi_search(frame_rgb, index, t_capture_ns, pred, gate, lost_frames)
            return found if found is not None else self._lost_frame(index, t_capture_ns, pred, detector_ran=True)
        h_img, w_img = frame_rgb.shape[:2]
        n_views = len(self.detector.views(w_img, h_img))
        detections = []
        for _ in range(min(s.search_views_per_frame, n_views)):
            self.detector_runs += 1
            detections += self.detector.detect_view(frame_rgb, self._view_cursor)
            self._view_cursor = (self._view_cursor + 1) % n_views
        heads = [det.head for det in detections]
        height = pred.y1 - pred.y0
        pcx, pcy = pred.center
        near = sorted((float(np.hypot(det.hip_center[0] - pcx, det.hip_center[1] - pcy)) / height, i)
                      for i, det in enumerate(detections))
        near = [(d, i) for d, i in near if d <= gate + 0.5]     # the hip may sit off the box centre
        if not near:
            return self._lost_frame(index, t_capture_ns, pred, detector_ran=True,
                                    others=[det.body for det in detections], heads=heads)
        det = detections[near[0][1]]
        self.pose.reset()           # a candidate's own detection, not the ROI tracked from another person
        try:
            if hasattr(self.pose, "seed_detection"):    # the landmark run on this detection's ROI, no second detector
                self.pose.seed_detection(det)
                cand = self.pose.infer(frame_rgb, t_capture_ns, det.body, detector_fallback=False)
            else:
                cand = self.pose.infer(frame_rgb, t_capture_ns, det.body)
        except ValueError:          # ROI entirely outside the frame
            cand = None
        if cand is None:
            return self._lost_frame(index, t_capture_ns, pred, detector_ran=True, candidates=0,
                                    others=[d.body for d in detections], heads=heads)
        app = appearance_distance(appearance_rgb(frame_rgb, cand), self._template or {})
        ok, d, iou, _ = self._gates(cand, pred, app, gate, lost_frames)
        others = [x.body for x in detections if not _contains(grow_box(cand.bbox, 0.1), x.hip_center)]
        if not ok:
            return self._lost_frame(index, t_capture_ns, pred, detector_ran=True, candidates=1, others=others,
                                    heads=heads)
        self.pose.track_from(cand)
        return self._accept(cand, index, t_capture_ns, pred, app, d, iou, 1, others, heads, True)

    def _roi_search(self, frame_rgb: np.ndarray, index: int, t_capture_ns: int, pred: BoundingBox, gate: float,
                    lost_frames: int) -> TrackFrame | None:
        """``roi_search``: the backend's detector on a crop around the prediction (one run), then the same gates."""
        self.pose.reset()
        self.detector_runs += 1
        try:
            cand = self.pose.infer(frame_rgb, t_capture_ns, grow_box(pred, 0.25))
        except ValueError:      # the crop left the frame
            cand = None
        if cand is None:
            return None
        app = appearance_distance(appearance_rgb(frame_rgb, cand), self._template or {})
        ok, d, iou, _ = self._gates(cand, pred, app, gate, lost_frames)
        if not ok:
            self.pose.reset()
            return None
        self.pose.track_from(cand)
        return self._accept(cand, index, t_capture_ns, pred, app, d, iou, 1, [], [], True)

    def _accept(self, best: PoseResult, index: int, t_capture_ns: int, pred: BoundingBox, app: float, d: float,
                iou: float, n_cands: int, others: list[BoundingBox], heads: list[BoundingBox],
                detector_ran: bool) -> TrackFrame:
        s = self.settings
        assert self._box is not None and self._last_index is not None
        dt = index - self._last_index
        step = (np.subtract(best.bbox.center, self._box.center)) / max(1, dt)
        self._velocity = (1 - s.velocity_rate) * self._velocity + s.velocity_rate * step
        self._box, self._last_index, self._lost = best.bbox, index, 0
        tf = TrackFrame(index, t_capture_ns, "tracked", best, best.bbox, pred, app, d, iou, n_cands, others, heads,
                        detector_ran)
        self.history.append(tf)
        return tf

    def summary(self) -> dict:
        """Frames tracked and lost (with the lost indices) over everything seen so far."""
        lost = [f.index for f in self.history if f.status == "lost"]
        return {"frames": len(self.history), "tracked": len(self.history) - len(lost), "lost": len(lost),
                "lost_indices": lost, "detector_runs": self.detector_runs,
                "frames_without_detector": sum(1 for f in self.history if not f.detector_ran),
                "backend": getattr(self.pose, "name", type(self.pose).__name__)}


def track_video(source, prompt: BoundingBox, start_index: int = 0, pose=None, detector=None,
                settings: TrackerSettings | None = None, interaction: Interaction | None = None,
                on_frame=None) -> list[TrackFrame]:
    """Run the tracker over a :class:`runtime.vision.frame_sources.FrameSource` from ``start_index``.

    Without ``pose``/``detector``: :func:`tracker_backend` ``"auto"`` (ONNX when built, else mediapipe).

    ``on_frame(frame, track_frame)`` is called for every processed frame (e.g. to anonymise and
    write it). Returns the per-frame results.
    """
    if pose is None or detector is None:
        auto_pose, auto_det, auto_settings = tracker_backend("auto")
        pose, detector = pose or auto_pose, detector or auto_det
        settings = settings or auto_settings
    tracker = PromptedTracker(pose, detector, settings, interaction)
    started = False
    for frame in source:
        if frame.index < start_index:
            continue
        if not started:
            tf = tracker.start(frame.image, frame.index, frame.t_capture_ns, prompt)
            started = True
        else:
            tf = tracker.update(frame.image, frame.index, frame.t_capture_ns)
        if on_frame is not None:
            on_frame(frame, tf)
    if not started:
        raise ValueError(f"start: the source has no frame {start_index}")
    return tracker.history


BACKENDS = ("auto", "onnx", "mediapipe")


def tracker_backend(backend: str = "auto", model_dir=None, landmark_model: str = "auto"):
    """(pose, detector, settings) for :class:`PromptedTracker` on ``backend``.

    ``"onnx"``: :class:`runtime.vision.pose_onnx.OnnxPose` (its own ROI tracking; detector only when needed),
    with :class:`runtime.vision.pose_onnx.OnnxPersonDetector` on the same detector session. ``"mediapipe"``:
    :class:`runtime.vision.pose_mediapipe.MediaPipePose` (ROI mode) + ``PoseDetector``, detector every frame.
    ``"auto"``: ONNX when its models are built and load, else mediapipe, the reason printed to stderr.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend: must be one of {BACKENDS}, got {backend!r}")
    if backend in ("auto", "onnx"):
        try:
            from runtime.vision.pose_onnx import OnnxPersonDetector, OnnxPose

            pose = OnnxPose(model_dir, landmark_model=landmark_model)
            return pose, OnnxPersonDetector(pose), TrackerSettings(detector="when_needed",
                                                                    min_tracking_confidence=pose.min_tracking_confidence)
        except (FileNotFoundError, ValueError, ImportError, RuntimeError) as exc:
            if backend == "onnx":
                raise
            print(f"vision: ONNX pose backend unavailable ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
                  f"falling back to the mediapipe backend", file=sys.stderr, flush=True)
    from runtime.vision.pose_mediapipe import MediaPipePose, PoseDetector

    return MediaPipePose(), PoseDetector(), TrackerSettings()


def make_tracker(backend: str = "auto", interaction: Interaction | None = None,
                 settings: TrackerSettings | None = None, model_dir=None) -> PromptedTracker:
    """A :class:`PromptedTracker` on :func:`tracker_backend` ``backend`` (``settings`` replace its defaults)."""
    pose, detector, auto = tracker_backend(backend, model_dir)
    return PromptedTracker(pose, detector, settings or auto, interaction)
