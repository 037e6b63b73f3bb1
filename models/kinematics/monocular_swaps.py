"""Left/right label swaps of a single camera's 2-D keypoints, repaired by temporal consistency.

BlazePose (and other single-image detectors) sometimes labels a whole body mirrored (left <-> right) for a run of
frames, typically when the subject is seen from behind or in front: on the pose2sim demo cam02 is mirrored on 27 of
100 frames (found by the four-camera triangulation, ``runtime.vision.triangulation.fix_left_right``); fitted
monocularly without repair, cam02's pelvis rotation is 82 deg RMSE off the reference.  One camera has no other view
to check against, but at video rates a body moves a few pixels between frames while a label swap moves every
left/right landmark by the body's width in the image.  So each frame is compared with the last frame already
accepted (labels as repaired): the frame is mirrored when the mirrored labels lie closer to it than the given
labels by ``ratio`` (median over the paired landmarks the frame and the reference frame both detect).  Where the
two sides project on top of each other (a side-on view), both costs are alike and the labels are kept.

Offline (:func:`repair_left_right`): the labelling of each frame chosen over the whole trial (Viterbi), the
majority keeping its labels.  Live (:class:`LeftRightRepair`, causal, no lag of its own): each new frame against the
last frame accepted, so a run of mirrored frames is mirrored back from its first frame on; what it cannot know
live is which labelling is the majority, so a run mirrored for longer than ``max_mirrored_run`` frames is taken
as the true labelling from then on (a wrong first decision does not hold for the rest of the trial).

Input ``xy`` (N, 33, 2) px (NaN: not detected), ``score`` (N, 33) 0-1, BlazePose-33 order; output copies.
"""
from __future__ import annotations

import numpy as np

from models.body.blazepose import BLAZEPOSE_33, BLAZEPOSE_MIRROR_INDEX

__all__ = ["MIRROR_INDEX", "SWAP_RATIO", "LeftRightRepair", "repair_left_right"]

#: Index of each BlazePose landmark's mirror (``models.body.blazepose.BLAZEPOSE_MIRROR_INDEX``).
MIRROR_INDEX = np.array(BLAZEPOSE_MIRROR_INDEX)
#: Mirrored when its cost is below this fraction of the labels' own (as the triangulation's ``fix_left_right``).
SWAP_RATIO = 0.5
#: Paired body landmarks compared (shoulders down: the face's points are small and often missing).
_PAIRED = np.array([i for i, n in enumerate(BLAZEPOSE_33) if n.startswith(("left_", "right_")) and i >= 11])
#: Fewest paired landmarks both frames must detect for a decision.
_MIN_PAIRED = 4


def _step_cost(a: np.ndarray, oka: np.ndarray, b: np.ndarray, okb: np.ndarray) -> float:
    """Median distance (px) between the paired landmarks of two frames (inf when too few are shared)."""
    both = oka & okb
    if both.sum() < _MIN_PAIRED:
        return np.inf
    return float(np.median(np.linalg.norm(a[both] - b[both], axis=-1)))


def repair_left_right(xy: np.ndarray, score: np.ndarray, *, min_score: float = 0.5, ratio: float = SWAP_RATIO
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(xy, score, swapped (N,) bool)``: the labelling (given or mirrored, per frame) whose frame-to-frame
    motion of the paired landmarks is smallest over the whole trial (Viterbi over the frames with enough
    landmarks), each switch of labelling charged ``(1 - ratio)`` times the median step; the majority of the frames
    keep their labels (a whole trial mirrored cannot be told from one camera).  ``min_score``: landmarks below it
    are not compared."""
    xy = np.array(xy, dtype=float)
    sc = np.nan_to_num(np.array(score, dtype=float), nan=0.0)
    if xy.ndim != 3 or xy.shape[1:] != (33, 2) or sc.shape != xy.shape[:2]:
        raise ValueError(f"xy must be (N, 33, 2) and score (N, 33), got {xy.shape} and {sc.shape}")
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"ratio must lie in (0, 1], got {ratio!r}")
    N = xy.shape[0]
    swapped = np.zeros(N, dtype=bool)
    ok = (sc >= min_score) & np.isfinite(xy).all(axis=-1)
    frames = [k for k in range(N) if ok[k, _PAIRED].sum() >= _MIN_PAIRED]
    if len(frames) < 2:
        return xy, sc, swapped
    views = [[(xy[k, _PAIRED], ok[k, _PAIRED]), (xy[k, MIRROR_INDEX[_PAIRED]], ok[k, MIRROR_INDEX[_PAIRED]])]
             for k in frames]
    # step costs (j, state now, state before); the switch charge is relative to the trial's typical step
    steps = np.array([[[_step_cost(*views[j][s], *views[j - 1][q]) for q in (0, 1)] for s in (0, 1)]
                      for j in range(1, len(frames))])
    typical = np.median(steps[:, 0, 0][np.isfinite(steps[:, 0, 0])]) if np.isfinite(steps[:, 0, 0]).any() else 0.0
    acc = np.zeros(2)
    back = np.zeros((len(frames), 2), dtype=np.int64)
    for j in range(1, len(frames)):
        c = np.where(np.isfinite(steps[j - 1]), steps[j - 1], 0.0)
        c = c + (1.0 - ratio) * typical * (np.arange(2)[:, None] != np.arange(2)[None, :])
        tot = acc[None, :] + c
        back[j] = np.argmin(tot, axis=1)
        acc = tot[np.arange(2), back[j]]
    state = np.zeros(len(frames), dtype=np.int64)
    state[-1] = int(np.argmin(acc))
    for j in range(len(frames) - 1, 0, -1):
        state[j - 1] = back[j, state[j]]
    if state.sum() * 2 > len(frames):
        state = 1 - state
    for j, k in enumerate(frames):
        if state[j]:
            swapped[k] = True
            xy[k] = xy[k, MIRROR_INDEX]
            sc[k] = sc[k, MIRROR_INDEX]
    return xy, sc, swapped


class LeftRightRepair:
    """Causal left/right repair for a live loop: :meth:`step` takes one frame (``xy`` (33, 2) px, ``score`` (33,))
    and returns ``(xy, score, swapped)`` (copies).  A detector's mirroring comes in runs, so the repair keeps a state
    (the detector mirrors now, or not) and each frame keeps the previous frame's state unless the other labelling
    lies closer to the last accepted frame by ``ratio`` (median over the paired landmarks both detect, as
    :func:`repair_left_right`'s step cost): frames where the two sides overlap in the image (legs passing, both
    costs alike) keep the run's state instead of breaking it.  The reference is the last frame with at least
    ``_MIN_PAIRED`` paired landmarks above ``min_score`` that either labelling explains: a frame whose closer
    labelling is still more than ``unexplained_factor`` typical steps (running mean of the accepted frames' steps,
    and at least ``unexplained_floor_px``) from the reference is a detection that fits neither (a garbled pose: both
    costs large), so it keeps the run's state and does not become the reference, for at most ``max_gap_frames``
    frames in a row.  After ``max_gap_frames`` frames without a usable one the reference is forgotten and the state
    cleared (the body may have moved by its width), and after ``max_mirrored_run``
    consecutive mirrored frames the given labels are taken as the true ones again (see the module docstring).
    One instance per camera stream; :meth:`reset` on a new one."""

    def __init__(self, *, min_score: float = 0.5, ratio: float = SWAP_RATIO, max_gap_frames: int = 15,
                 max_mirrored_run: int = 120, unexplained_factor: float = 6.0,
                 unexplained_floor_px: float = 20.0) -> None:
        if not 0.0 < ratio <= 1.0:
            raise ValueError(f"ratio must lie in (0, 1], got {ratio!r}")
        for name, x in (("unexplained_factor", unexplained_factor), ("unexplained_floor_px", unexplained_floor_px)):
            if not (np.isfinite(x) and x > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {x!r}")
        for name, v in (("max_gap_frames", max_gap_frames), ("max_mirrored_run", max_mirrored_run)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1 (frames), got {v!r}")
        self.min_score = float(min_score)
        self.ratio = float(ratio)
        self.max_gap_frames = max_gap_frames
        self.max_mirrored_run = max_mirrored_run
        self.unexplained_factor = float(unexplained_factor)
        self.unexplained_floor_px = float(unexplained_floor_px)
        self.reset()

    def reset(self) -> None:
        """Forget the reference frame and the state (a new stream: its first frame keeps its labels)."""
        self._ref: tuple[np.ndarray, np.ndarray] | None = None
        self._mirroring = False
        self._typical_px: float | None = None   # running mean of the accepted frames' step (px)
        self._gap = 0
        self._run = 0
        self.swapped_frames = 0
        self.unexplained_frames = 0

    def step(self, xy: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
        """One frame, BlazePose-33 order -> ``(xy, score, swapped)`` (copies; NaN score read as 0)."""
        xy = np.array(xy, dtype=float)
        sc = np.nan_to_num(np.array(score, dtype=float), nan=0.0)
        if xy.shape != (33, 2) or sc.shape != (33,):
            raise ValueError(f"xy must be (33, 2) and score (33,), got {xy.shape} and {sc.shape}")
        ok = (sc >= self.min_score) & np.isfinite(xy).all(axis=-1)
        usable = ok[_PAIRED].sum() >= _MIN_PAIRED
        if usable and self._ref is not None:
            own = _step_cost(xy[_PAIRED], ok[_PAIRED], *self._ref)
            mirrored = _step_cost(xy[MIRROR_INDEX[_PAIRED]], ok[MIRROR_INDEX[_PAIRED]], *self._ref)
            best = min(own, mirrored)
            if (self._typical_px is not None and self._gap < self.max_gap_frames
                    and best > max(self.unexplained_floor_px, self.unexplained_factor * self._typical_px)):
                usable = False                       # neither labelling explains it: hold the state and reference
                self.unexplained_frames += 1
            elif np.isfinite(best):
                kept, other = (mirrored, own) if self._mirroring else (own, mirrored)
                if np.isfinite(other) and other < self.ratio * kept:
                    self._mirroring = not self._mirroring
                self._typical_px = best if self._typical_px is None else 0.9 * self._typical_px + 0.1 * best
        if not usable:
            self._gap += 1
            if self._gap > self.max_gap_frames:
                self._ref, self._mirroring, self._run, self._typical_px = None, False, 0, None
        self._run = self._run + 1 if self._mirroring else 0
        if self._run > self.max_mirrored_run:        # mirrored for too long: these labels are the true ones
            self._mirroring, self._run = False, 0
        swapped = self._mirroring
        if swapped:
            xy, sc, ok = xy[MIRROR_INDEX], sc[MIRROR_INDEX], ok[MIRROR_INDEX]
            self.swapped_frames += 1
        if usable:
            self._ref = (xy[_PAIRED].copy(), ok[_PAIRED].copy())
            self._gap = 0
        return xy, sc, swapped
