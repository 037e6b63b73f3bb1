"""On-device anonymisation: every head in a frame is blurred before the frame goes anywhere.

The only code that creates :class:`runtime.core.privacy.AnonymizedFrame`. Regions blurred per frame
(pixels, full frame), each grown by ``margin`` of its size on every side:

* ``face-short`` / ``face-full``: MediaPipe's bundled face detectors (short range, and the
  full-range model), run on the whole frame;
* ``person-head``: the head box of every person found by the bundled BlazePose detector
  (:class:`runtime.vision.pose_mediapipe.PoseDetector`, tiled so that people far from the camera
  are found: MediaPipe's face detectors find no face in the ``sports2d`` demo, faces are too
  small);
* ``pose-head``: a head box from the pose landmarks given by the caller (nose, eyes, ears,
  mouth; sized from the landmark span and the torso length);
* ``pose-follow``: every person seen is remembered by their body box, and in the next frames
  the pose model runs on that box: their landmarks give the head and move the box (the person
  detector loses the backlit man on the box for dozens of frames; the pose model on his crop
  keeps him); a box where the pose model finds nobody is forgotten after ``hold_frames``;
* ``held``: a head box seen in one of the last ``hold_frames`` frames that no current box
  re-detects (IoU > 0.3 or containment), grown by ``hold_growth`` per frame of age — a head seen last frame is never emitted
  unblurred because a detector missed it this frame.

Bounded rate (``detect_every`` N > 1, optionally ``detect_move_px`` X): the detectors (face, person) and
``pose-follow`` run only on every N-th frame, or earlier when the caller's target head box (from its current
landmarks) has moved more than X px since the last detection frame; in between, the ``pose-head`` box of the
current landmarks is blurred on every frame and every box of the last detection frame stays blurred as
``held`` (growing by ``hold_growth`` per frame; held for at least N frames, so a head is never left unblurred
between two detection frames). :meth:`Anonymiser.bounded` gives the live setting: N = 5 (6 Hz at 30 fps) or
a move of 40 px (a third of a head's height at the demo's scale). ``detection_frames`` counts the frames the
detectors ran on.

Blur: ``gaussian`` (default; σ = half the region's longer side, edges replicated: what is left is a
smooth colour gradient) or ``pixelate`` (averaged down to at most ``cells`` × ``cells`` blocks, then
smoothed). Pixel blocks of skin and hair can look like a face to a face detector: on the pose2sim
demo MediaPipe's short-range detector fires (0.58–0.8) on a pixelated head, never on the Gaussian
one, hence the default.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from runtime.core.privacy import AnonymizedFrame, _issue
from runtime.vision.pose_types import BoundingBox, PoseResult

_LEFT_SHOULDER, _RIGHT_SHOULDER, _LEFT_HIP, _RIGHT_HIP = 11, 12, 23, 24
_HEAD = tuple(range(0, 11))


def pose_head_box(pose: PoseResult) -> BoundingBox:
    """Head box (pixels) from BlazePose landmarks: centred on the head landmarks, side =
    max(1.6 × their span, 0.6 × torso length); not clipped to the frame."""
    head = np.asarray(pose.image_xy, dtype=np.float64)[list(_HEAD)]
    if not np.all(np.isfinite(head)):
        raise ValueError("pose.image_xy: head landmarks must be finite")
    lo, hi = head.min(axis=0), head.max(axis=0)
    side = 1.6 * float(max(hi - lo))
    xy = np.asarray(pose.image_xy, dtype=np.float64)
    shoulders = 0.5 * (xy[_LEFT_SHOULDER] + xy[_RIGHT_SHOULDER])
    hips = 0.5 * (xy[_LEFT_HIP] + xy[_RIGHT_HIP])
    torso = float(np.hypot(*(shoulders - hips)))
    if np.isfinite(torso):
        side = max(side, 0.6 * torso)
    side = max(side, 8.0)
    cx, cy = 0.5 * (lo + hi)
    return BoundingBox(cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)


def grow(box: BoundingBox, margin: float) -> BoundingBox:
    """``box`` grown by ``margin`` × its width/height on every side."""
    w, h = box.x1 - box.x0, box.y1 - box.y0
    return BoundingBox(box.x0 - margin * w, box.y0 - margin * h, box.x1 + margin * w, box.y1 + margin * h)


def _clip(box: BoundingBox, width: int, height: int) -> tuple[int, int, int, int] | None:
    x0, y0 = max(0, int(np.floor(box.x0))), max(0, int(np.floor(box.y0)))
    x1, y1 = min(width, int(np.ceil(box.x1))), min(height, int(np.ceil(box.y1)))
    if x1 - x0 < 1 or y1 - y0 < 1:
        return None
    return x0, y0, x1, y1


def _covers(outer: BoundingBox, inner: BoundingBox) -> bool:
    return outer.x0 <= inner.x0 and outer.y0 <= inner.y0 and outer.x1 >= inner.x1 and outer.y1 >= inner.y1


def _contains(box: BoundingBox, point: tuple[float, float]) -> bool:
    return box.x0 <= point[0] <= box.x1 and box.y0 <= point[1] <= box.y1


def _body_roi(pose: PoseResult) -> BoundingBox:
    """A square body box around a pose's landmarks (side 1.2 × the larger landmark extent)."""
    b = pose.bbox
    side = 1.2 * max(b.x1 - b.x0, b.y1 - b.y0)
    cx, cy = b.center
    return BoundingBox(cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)


def _same_head(current: BoundingBox, previous: BoundingBox) -> bool:
    """True when ``current`` re-detects the head of ``previous`` (IoU > 0.3, or contains it)."""
    return current.iou(previous) > 0.3 or _covers(current, previous)


def blur_region(image: np.ndarray, region: tuple[int, int, int, int], method: str = "gaussian", cells: int = 6) -> None:
    """Blur ``image[y0:y1, x0:x1]`` in place (``method`` "pixelate" or "gaussian")."""
    import cv2

    x0, y0, x1, y1 = region
    roi = image[y0:y1, x0:x1]
    h, w = roi.shape[:2]
    if h < 1 or w < 1:
        return
    if method == "pixelate":
        small = cv2.resize(roi, (max(1, min(cells, w)), max(1, min(cells, h))), interpolation=cv2.INTER_AREA)
        big = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
        k = max(3, (min(w, h) // max(1, cells)) | 1)
        roi[:] = cv2.GaussianBlur(big, (k, k), 0)
    elif method == "gaussian":
        # σ = half the longer side, computed on the region averaged down to ≤ 32 px (the same low-pass
        # result as a full-size kernel of ~3 region sides, at a fraction of the cost), then upsampled
        f = min(1.0, 32.0 / max(w, h))
        sw, sh = max(1, int(round(w * f))), max(1, int(round(h * f)))
        small = cv2.resize(roi, (sw, sh), interpolation=cv2.INTER_AREA) if f < 1.0 else roi.copy()
        sigma = max(1.0, max(sw, sh) / 2.0)
        k = int(2 * round(3 * sigma) + 1)
        small = cv2.GaussianBlur(small, (k, k), sigma, borderType=cv2.BORDER_REPLICATE)
        roi[:] = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR) if f < 1.0 else small
    else:
        raise ValueError(f"method: 'pixelate' or 'gaussian', got {method!r}")


class Anonymiser:
    """Blurs every head of a frame and wraps the result in :class:`AnonymizedFrame`.

    Parameters
    ----------
    margin : safety margin, fraction of each region's size added on every side (≥ 0.1).
    method : "gaussian" (default) or "pixelate".
    face_min_confidence : threshold of the face detectors, 0..1 (low: a false blur is harmless).
    use_face_detector, use_person_detector : run MediaPipe's face detectors / the BlazePose
        person detector on the whole frame.
    follow_people : remember every person seen (body box) and run the pose model on that box in
        the next frames: their head box then also comes from their landmarks (``pose-follow``),
        and the box follows them. The person detector misses people for dozens of frames in a
        row (the backlit man on the box of the ``sports2d`` demo, frames ≈ 105–160); the pose
        model on his crop does not. Costs one pose inference per person in view per frame.
    hold_frames : how many frames an unconfirmed head box is still blurred (grown each frame);
        3 (0.1 s at 30 fps) covers a detector's one- or two-frame misses without smearing
        flickering false detections over the image.
    hold_growth : growth of a held box per frame of age (fraction of its size per side; 0.1 covers
        a head moving its own width in five frames, i.e. faster than walking at 30 fps).
    detect_every : run the detectors (and ``follow_people``) on every N-th frame only (1: every frame).
    detect_move_px : also run them when the first given pose's head box centre moved more than this many
        pixels since the last detection frame (None: only every N-th frame).
    person_detector : the person detector to use (``detect(frame) -> [PersonDetection]``, e.g.
        :class:`runtime.vision.pose_onnx.OnnxPersonDetector`); None: MediaPipe's tiled ``PoseDetector``.
    follow_pose : the pose backend of ``follow_people`` (``infer(frame, t_ns, roi)``; ``reset()`` is called
        before each person when it has one); None: MediaPipe's BlazePose.
    """

    def __init__(self, margin: float = 0.3, method: str = "gaussian", face_min_confidence: float = 0.3,
                 use_face_detector: bool = True, use_person_detector: bool = True, follow_people: bool = True,
                 hold_frames: int = 3, hold_growth: float = 0.1, detect_every: int = 1,
                 detect_move_px: float | None = None, person_detector=None, follow_pose=None) -> None:
        if not (0.1 <= margin <= 2.0):
            raise ValueError(f"margin: must be within 0.1..2 (fraction of the region size), got {margin}")
        if method not in ("pixelate", "gaussian"):
            raise ValueError(f"method: 'pixelate' or 'gaussian', got {method!r}")
        if not (0.0 < face_min_confidence < 1.0):
            raise ValueError(f"face_min_confidence: must be within (0, 1), got {face_min_confidence}")
        if hold_frames < 1:
            raise ValueError(f"hold_frames: must be ≥ 1 (a head seen last frame stays blurred), got {hold_frames}")
        if not (0.0 <= hold_growth <= 1.0):
            raise ValueError(f"hold_growth: must be within 0..1, got {hold_growth}")
        if not isinstance(detect_every, int) or detect_every < 1:
            raise ValueError(f"detect_every: must be an integer ≥ 1 (frames), got {detect_every!r}")
        if detect_move_px is not None and not (np.isfinite(detect_move_px) and detect_move_px > 0):
            raise ValueError(f"detect_move_px: must be > 0 px or None, got {detect_move_px}")
        self.detect_every = int(detect_every)
        self.detect_move_px = None if detect_move_px is None else float(detect_move_px)
        self._since_detect: int | None = None   # frames since the last detection frame (None: none yet)
        self._detect_head: tuple[float, float] | None = None
        self.detection_frames = 0
        self.margin, self.method = float(margin), method
        self.face_min_confidence = float(face_min_confidence)
        self.use_face_detector, self.use_person_detector = bool(use_face_detector), bool(use_person_detector)
        self.follow_people = bool(follow_people)
        self._pose = follow_pose
        self._people: list[tuple[BoundingBox, int]] = []  # (body ROI, frames since confirmed)
        # a box from a detection frame is held until the next one, at least
        self.hold_frames, self.hold_growth = max(int(hold_frames), int(detect_every)), float(hold_growth)
        self._faces = None
        self._detector = person_detector
        self._held: list[tuple[BoundingBox, int]] = []  # (box before margin, age in frames)
        self.frames = 0
        self.regions_by_source: dict[str, int] = {}

    @classmethod
    def bounded(cls, **kwargs) -> "Anonymiser":
        """The live setting (module docstring): detectors every 5 frames or on a 40 px head move."""
        kwargs.setdefault("detect_every", 5)
        kwargs.setdefault("detect_move_px", 40.0)
        return cls(**kwargs)

    def _detection_due(self, poses: Sequence[PoseResult]) -> bool:
        """True when this frame runs the detectors (see ``detect_every``, ``detect_move_px``)."""
        if self._since_detect is None or self._since_detect + 1 >= self.detect_every:
            return True
        if self.detect_move_px is not None:
            head = self._target_head(poses)
            if (head is None) != (self._detect_head is None):
                return True   # the target appeared or vanished since the last detection frame
            if head is not None and self._detect_head is not None:
                moved = float(np.hypot(head[0] - self._detect_head[0], head[1] - self._detect_head[1]))
                if moved > self.detect_move_px:
                    return True
        return False

    @staticmethod
    def _target_head(poses: Sequence[PoseResult]) -> tuple[float, float] | None:
        for p in poses:
            if p is not None:
                try:
                    return pose_head_box(p).center
                except ValueError:
                    return None
        return None

    def _face_boxes(self, frame_rgb: np.ndarray) -> list[tuple[BoundingBox, str]]:
        import mediapipe as mp

        if self._faces is None:
            fd = mp.solutions.face_detection
            self._faces = [("face-short", fd.FaceDetection(model_selection=0, min_detection_confidence=self.face_min_confidence)),
                           ("face-full", fd.FaceDetection(model_selection=1, min_detection_confidence=self.face_min_confidence))]
        h, w = frame_rgb.shape[:2]
        image = np.ascontiguousarray(frame_rgb)
        out = []
        for label, det in self._faces:
            res = det.process(image)
            for d in res.detections or []:
                rb = d.location_data.relative_bounding_box
                x0, y0 = rb.xmin * w, rb.ymin * h
                x1, y1 = x0 + rb.width * w, y0 + rb.height * h
                if x1 > x0 and y1 > y0:
                    out.append((BoundingBox(x0, y0, x1, y1), label))
        return out

    def head_regions(self, frame_rgb: np.ndarray, poses: Sequence[PoseResult] = (),
                     heads: Sequence[BoundingBox] = (),
                     people: Sequence[BoundingBox] = ()) -> list[tuple[BoundingBox, str]]:
        """Head boxes (before margin) found in this frame, with their source label; updates the hold.

        ``heads``: head boxes the caller already has (e.g. the tracker's person detections);
        ``people``: body boxes of those people (pixels), remembered for ``follow_people``.
        """
        found: list[tuple[BoundingBox, str]] = [(b, "person-head") for b in heads]
        bodies: list[BoundingBox] = list(people)
        targets: list[BoundingBox] = []
        detect = self._detection_due(poses)
        if detect:
            self._since_detect, self._detect_head = 0, self._target_head(poses)
            self.detection_frames += 1
        else:
            self._since_detect = (self._since_detect or 0) + 1
        if detect and self.use_face_detector:
            found += self._face_boxes(frame_rgb)
        if detect and self.use_person_detector:
            if self._detector is None:
                from runtime.vision.pose_mediapipe import PoseDetector

                self._detector = PoseDetector(min_score=0.5)
            for d in self._detector.detect(frame_rgb):
                found.append((d.head, "person-head"))
                bodies.append(d.body)
        for p in poses:
            if p is not None:
                found.append((pose_head_box(p), "pose-head"))
                targets.append(p.bbox)
        if self.follow_people and detect:
            found += self._follow(frame_rgb, bodies, targets)
        held = []
        for box, age in self._held:
            if any(_same_head(b, box) for b, _ in found):
                continue  # re-detected this frame: the current box covers it
            held.append((grow(box, self.hold_growth * age), "held"))
        self._held = [(b, 1) for b, _ in found] + [(b, a + 1) for b, a in self._held if a + 1 <= self.hold_frames
                                                   and not any(_same_head(f, b) for f, _ in found)]
        return found + held

    def _follow(self, frame_rgb: np.ndarray, bodies: list[BoundingBox],
                targets: list[BoundingBox]) -> list[tuple[BoundingBox, str]]:
        """The pose model on the body box of every remembered person (not the caller's ``targets``,
        whose landmarks were given); then this frame's detections not yet followed are remembered."""
        out: list[tuple[BoundingBox, str]] = []
        people: list[tuple[BoundingBox, int]] = []
        posed: list[BoundingBox] = list(targets)
        for roi, age in self._people:
            if any(_contains(grow(t, 0.1), roi.center) for t in posed):
                continue  # a target, or someone already posed this frame
            if self._pose is None:
                from runtime.vision.pose_mediapipe import MediaPipePose

                self._pose = MediaPipePose(roi_margin=0.2)
            # people already posed are greyed out, so that the pose model on this box cannot settle
            # on someone else standing in it (the crop of a detector's body box is large)
            image = frame_rgb
            if posed:
                image = np.array(frame_rgb, copy=True)
                h, w = image.shape[:2]
                for q in posed:
                    r = _clip(grow(q, 0.05), w, h)
                    if r is not None:
                        image[r[1]:r[3], r[0]:r[2]] = 127
            if hasattr(self._pose, "reset"):
                self._pose.reset()      # a tracking backend: this person's own ROI, nothing carried over
            try:
                p = self._pose.infer(image, 0, roi)
            except ValueError:  # the box has left the frame
                p = None
            if p is not None and _contains(grow(roi, 0.2), p.bbox.center) \
                    and not any(p.bbox.iou(q) > 0.5 for q in posed):
                out.append((pose_head_box(p), "pose-follow"))
                people.append((_body_roi(p), 0))
                posed.append(p.bbox)
            elif age + 1 <= self.hold_frames:
                people.append((roi, age + 1))
        for b in bodies:
            if not any(_contains(grow(t, 0.1), b.center) for t in targets) \
                    and not any(_contains(r, b.center) for r, _ in people):
                people.append((b, 0))
        self._people = people
        return out

    def anonymize(self, frame_rgb: np.ndarray, t_capture_ns: int, poses: Sequence[PoseResult] = (),
                  heads: Sequence[BoundingBox] = (), people: Sequence[BoundingBox] = ()) -> AnonymizedFrame:
        """A blurred copy of ``frame_rgb`` ((H, W, 3) uint8 RGB) as an :class:`AnonymizedFrame`.

        ``poses``: landmarks already computed for this frame (their heads are blurred too);
        ``heads``: head boxes already found (pixels), blurred as well; ``people``: those people's
        body boxes (pixels), followed with the pose model while no detector confirms them.
        """
        if not isinstance(frame_rgb, np.ndarray) or frame_rgb.ndim != 3 or frame_rgb.shape[2] != 3 \
                or frame_rgb.dtype != np.uint8:
            raise ValueError(f"frame_rgb: expected an (H, W, 3) uint8 RGB array, got "
                             f"{getattr(frame_rgb, 'shape', None)} {getattr(frame_rgb, 'dtype', type(frame_rgb).__name__)}")
        h, w = frame_rgb.shape[:2]
        out = np.array(frame_rgb, copy=True)
        regions, sources = [], []
        for box, label in self.head_regions(frame_rgb, poses, heads, people):
            r = _clip(grow(box, self.margin), w, h)
            if r is None:
                continue
            blur_region(out, r, self.method)
            regions.append(r)
            sources.append(label)
            self.regions_by_source[label] = self.regions_by_source.get(label, 0) + 1
        self.frames += 1
        return _issue(out, t_capture_ns, regions, sources)

    __call__ = anonymize

    def reset(self) -> None:
        """Forget held head boxes and followed people (a new, unrelated video)."""
        self._held = []
        self._people = []
        self._since_detect, self._detect_head = None, None

    def close(self) -> None:
        """Release the MediaPipe graphs."""
        for _, det in self._faces or []:
            det.close()
        self._faces = None
        if self._pose is not None and hasattr(self._pose, "close"):
            self._pose.close()
        self._pose = None


def anonymize(frame_rgb: np.ndarray, t_capture_ns: int, poses: Sequence[PoseResult] = (),
              anonymiser: Anonymiser | None = None) -> AnonymizedFrame:
    """One frame through ``anonymiser`` (a fresh :class:`Anonymiser` when None: no hold across calls)."""
    a = anonymiser if anonymiser is not None else Anonymiser()
    try:
        return a.anonymize(frame_rgb, t_capture_ns, poses)
    finally:
        if anonymiser is None:
            a.close()




# -- drawing on, and writing, anonymised frames only ------------------------------------------------

#: BlazePose skeleton edges drawn by :func:`annotate` (landmark index pairs).
SKELETON: tuple[tuple[int, int], ...] = (
    (11, 12), (11, 13), (13, 15), (12, 14), (14, 16), (11, 23), (12, 24), (23, 24),
    (23, 25), (25, 27), (27, 29), (29, 31), (27, 31), (24, 26), (26, 28), (28, 30), (30, 32), (28, 32))


def annotate(frame: AnonymizedFrame, pose: PoseResult | None = None, bbox: BoundingBox | None = None,
             label: str = "", color: tuple[int, int, int] = (0, 255, 0)) -> AnonymizedFrame:
    """A copy of an anonymised frame with the body skeleton (no head landmarks), a box and a label
    drawn on it; still anonymised (drawing adds no image content). ``color`` is RGB."""
    import cv2

    from runtime.core.privacy import require_anonymized

    require_anonymized(frame, "annotate")
    img = np.array(frame.image, copy=True)
    if pose is not None:
        xy = np.asarray(pose.image_xy)
        for a, b in SKELETON:
            if np.all(np.isfinite(xy[[a, b]])):
                cv2.line(img, tuple(int(v) for v in xy[a]), tuple(int(v) for v in xy[b]), color, 3, cv2.LINE_AA)
    if bbox is not None:
        cv2.rectangle(img, (int(bbox.x0), int(bbox.y0)), (int(bbox.x1), int(bbox.y1)), color, 2)
    if label:
        cv2.putText(img, label, (12, 36), cv2.FONT_HERSHEY_SIMPLEX, 1.0, color, 2, cv2.LINE_AA)
    return _issue(img, frame.t_capture_ns, frame.regions, frame.sources)


class AnonymizedVideoWriter:
    """An MP4 (``mp4v``) writer that accepts only :class:`AnonymizedFrame` (RGB in, BGR on disk)."""

    def __init__(self, path, fps: float, size: tuple[int, int]) -> None:
        import cv2

        if not (np.isfinite(fps) and 0 < fps <= 240):
            raise ValueError(f"fps: must be within (0, 240], got {fps}")
        self.path = str(path)
        self.size = (int(size[0]), int(size[1]))
        self._w = cv2.VideoWriter(self.path, cv2.VideoWriter_fourcc(*"mp4v"), float(fps), self.size)
        if not self._w.isOpened():
            raise RuntimeError(f"video writer: OpenCV cannot write {self.path} (mp4v)")
        self.frames = 0

    def write(self, frame: AnonymizedFrame) -> None:
        import cv2

        from runtime.core.privacy import require_anonymized

        require_anonymized(frame, f"video writer {self.path}")
        h, w = frame.image.shape[:2]
        if (w, h) != self.size:
            raise ValueError(f"frame: size {w}x{h} differs from the video's {self.size[0]}x{self.size[1]}")
        self._w.write(cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR))
        self.frames += 1

    def close(self) -> None:
        self._w.release()

    def __enter__(self) -> "AnonymizedVideoWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


__all__ = ["Anonymiser", "AnonymizedFrame", "AnonymizedVideoWriter", "annotate", "anonymize", "blur_region", "grow",
           "pose_head_box"]
