"""Bounded anonymisation for the live front end: the pose path never waits on a detector.

Per frame (after the frame's landmarks are published, so its pose never waits on it), every frame is blurred on

* the head box of the tracked person's **current** landmarks (``pose-head``),
* the head boxes of every person the tracker's own detector found when it ran this frame (``person-head``),
* the boxes of the face detectors' last pass, grown by ``hold_growth`` per frame since the frame they were
  found on (``held``; kept ``max_age`` frames).

MediaPipe's face detectors run at a bounded rate: every ``detect_every``-th frame (≈ 10 ms here, both models),
on that frame before its blur. A frame that **leaves** the process (``leaves=True``: a report snapshot) is kept,
raw, inside the process and written to ``sink`` only after the full detector pass of
:class:`runtime.vision.anonymise.Anonymiser` (face detectors, the tiled person detector, the pose model on every
bystander's box; ≈ 100 ms here) on top of its inline boxes — at :meth:`LiveAnonymiser.close`, off the live
path (at most ``max_pending`` frames are kept; more are not written, counted in ``leaving_skipped``).

Measured here, and why nothing runs in a thread: the full pass in a worker thread of the live process took
≈ 0.5 s and slowed the tracked pose from ≈ 20 to ≈ 68 ms per frame; the face detectors alone in a worker held
the GIL for up to ≈ 110 ms (frames without any pose then waited 60-170 ms to be published).
"""
from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from runtime.core.privacy import AnonymizedFrame
from runtime.vision.anonymise import Anonymiser, grow
from runtime.vision.pose_types import BoundingBox, PoseResult


class LiveAnonymiser:
    """Bounded blur on every frame, face detectors every ``detect_every`` frames, full pass on the frames that
    leave, deferred (module docstring).

    ``full``: the :class:`Anonymiser` of the frames that leave (every detector on); ``faces``: the bounded face
    pass's (face detectors only; default: a new one); ``sink(AnonymizedFrame)``: where frames that leave go (e.g.
    ``SnapshotWriter.write``), called by :meth:`close`; ``detect_every``: frames between two face passes (≥ 1);
    ``hold_growth``: growth of a held box per frame of age (fraction of its size per side); ``max_age``: frames a
    face box is held (default 3 × ``detect_every``, ≥ ``detect_every``)."""

    def __init__(self, full: Anonymiser, sink: Callable[[AnonymizedFrame], None] | None = None,
                 detect_every: int = 10, hold_growth: float = 0.1, max_age: int | None = None,
                 margin: float = 0.3, faces: Anonymiser | None = None, max_pending: int = 32) -> None:
        if not isinstance(detect_every, int) or detect_every < 1:
            raise ValueError(f"detect_every: must be an integer ≥ 1 (frames), got {detect_every!r}")
        if not 0.0 <= hold_growth <= 1.0:
            raise ValueError(f"hold_growth: must be within 0..1, got {hold_growth}")
        if max_pending < 1:
            raise ValueError(f"max_pending: must be ≥ 1 frame, got {max_pending}")
        self.full, self.sink, self.max_pending = full, sink, int(max_pending)
        self.faces = faces if faces is not None else Anonymiser(margin=margin, use_person_detector=False,
                                                                follow_people=False, hold_frames=1)
        self.detect_every, self.hold_growth = int(detect_every), float(hold_growth)
        self.max_age = int(max_age) if max_age is not None else 3 * self.detect_every
        if self.max_age < self.detect_every:
            raise ValueError(f"max_age = {self.max_age}: must be ≥ detect_every = {self.detect_every} frames")
        self.inline = Anonymiser(margin=margin, use_face_detector=False, use_person_detector=False,
                                 follow_people=False, hold_frames=3)
        self._leaving: deque[tuple] = deque()
        self._boxes: tuple[int, list[BoundingBox]] = (-1, [])   # (frame number, face boxes) of the last pass
        self.frames = self.passes = self.written = self.leaving_skipped = 0
        self.inline_s: list[float] = []
        self.face_s: list[float] = []
        self.full_s: list[float] = []
        self.errors: list[str] = []

    def anonymize(self, frame_rgb: np.ndarray, t_capture_ns: int, poses: Sequence[PoseResult] = (),
                  heads: Sequence[BoundingBox] = (), people: Sequence[BoundingBox] = (),
                  leaves: bool = False) -> AnonymizedFrame:
        """This frame blurred on its bounded boxes (the face pass first when due); ``leaves``: also kept for the
        full pass, whose result goes to ``sink`` at :meth:`close`. ``poses``/``heads``/``people`` as in
        :meth:`Anonymiser.anonymize`."""
        t0 = time.perf_counter()
        n = self.frames
        self.frames += 1
        if n % self.detect_every == 0:
            self._boxes = (n, [b for b, s in self.faces.head_regions(frame_rgb) if s.startswith("face")])
            self.passes += 1
            self.face_s.append(time.perf_counter() - t0)
        k, boxes = self._boxes
        age = n - k
        held = [grow(b, self.hold_growth * age) for b in boxes] if 0 <= k and age <= self.max_age else []
        found = list(heads) + held
        out = self.inline.anonymize(frame_rgb, t_capture_ns, poses, heads=found)
        if leaves:
            if len(self._leaving) < self.max_pending:
                self._leaving.append((n, frame_rgb, t_capture_ns, tuple(p for p in poses if p is not None), found,
                                      list(people)))
            else:
                self.leaving_skipped += 1
        self.inline_s.append(time.perf_counter() - t0)
        return out

    def _write_leaving(self) -> None:
        """The full detector pass on every kept frame that leaves, in order, then ``sink``."""
        while self._leaving:
            n, image, t_ns, poses, heads, people = self._leaving.popleft()
            t0 = time.perf_counter()
            try:
                frame = self.full.anonymize(image, t_ns, poses, heads=heads, people=people)
            except Exception as exc:    # not written: nothing unblurred leaves
                self.errors.append(f"full pass, frame {n}: {type(exc).__name__}: {exc}")
                continue
            self.full_s.append(time.perf_counter() - t0)
            if self.sink is not None:
                self.sink(frame)
                self.written += 1

    def close(self) -> dict[str, Any]:
        """Write the frames that leave after their full pass; the counters and per-frame costs (ms)."""
        self._write_leaving()
        self.full.close()
        self.faces.close()
        self.inline.close()

        def pct(x: list[float]) -> dict[str, float]:
            a = np.asarray(x) * 1e3
            if a.size == 0:
                return {"count": 0}
            return {"count": int(a.size), "p50": float(np.median(a)), "p99": float(np.percentile(a, 99)),
                    "max": float(a.max())}
        regions = dict(self.inline.regions_by_source)
        for k, v in self.full.regions_by_source.items():
            regions[f"leaving:{k}"] = v
        return {"frames": self.frames, "detect_every": self.detect_every, "face_passes": self.passes,
                "written": self.written, "leaving_skipped": self.leaving_skipped, "inline_ms": pct(self.inline_s),
                "face_pass_ms": pct(self.face_s), "full_pass_ms": pct(self.full_s), "regions": regions,
                "errors": self.errors}
