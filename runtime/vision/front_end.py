"""The live vision front end, one frame at a time: track the prompted person, anonymise, ground in the world.

    frame (RGB) --> PromptedTracker (pose on the prompted person's ROI)  --> PoseResult | lost
              \\-> Anonymiser (faces + every head) -> AnonymizedFrame, for every frame that leaves the stage
    PoseResult --> OnlineGrounding (scale, floor and heading from a warm-up window) --> landmarks (33, 3) world

World frame: right-handed, z up, origin on the floor, y along the walking direction found in the
warm-up (``runtime.vision.world.ground_monocular`` with ``heading="walking"``). Before the warm-up is
complete the output is invalid (the estimation chain gets nothing; assistance stays zero).

Used by the vision process (:mod:`runtime.vision.process`); :func:`build_front_end` is its factory.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from runtime.vision.pose_types import BoundingBox, PoseResult


@dataclass
class FrontEndOutput:
    """One frame out of a front end: world landmarks (33, 3) z up floor at 0, visibility, and stage times."""

    valid: bool
    world_m: np.ndarray
    visibility: np.ndarray
    pose_s: float = 0.0
    anonymise_s: float = 0.0
    ground_s: float = 0.0
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Prompt:
    """Who to follow: a box (pixels) in frame ``frame``; optional description and interaction labels."""

    bbox: BoundingBox
    frame: int = 0
    describe: str | None = None
    interaction: tuple[str, ...] = ()

    @staticmethod
    def from_dict(d: dict[str, Any]) -> "Prompt":
        if "bbox" not in d:
            raise ValueError("prompt: a bbox (x0, y0, x1, y1 in pixels) is required to choose the person to follow")
        b = d["bbox"]
        if len(b) != 4:
            raise ValueError(f"prompt.bbox = {b!r}: need 4 numbers x0,y0,x1,y1 (pixels)")
        frame = int(d.get("frame", 0))
        if frame < 0:
            raise ValueError(f"prompt.frame = {frame}: must be >= 0")
        return Prompt(BoundingBox(*map(float, b)), frame, d.get("describe"), tuple(d.get("interaction", ())))


class OnlineGrounding:
    """Monocular BlazePose -> world landmarks, causally: the first ``warmup_frames`` tracked frames fix the
    metric scale (subject height), the floor plane and the heading (``ground_monocular`` on them); after
    that every frame is placed with its own root translation (least squares on its pixels)."""

    def __init__(self, camera: Any, height_m: float, warmup_frames: int = 30) -> None:
        if warmup_frames < 8:
            raise ValueError(f"warmup_frames = {warmup_frames}: need at least 8 frames to fit a floor")
        self.camera, self.height_m, self.warmup_frames = camera, float(height_m), int(warmup_frames)
        self._buf: list[PoseResult] = []
        self._t: list[float] = []
        self.ready = False
        self.notes: list[str] = []
        self.scale = self._R = self._cam_pos = None

    def step(self, pose: PoseResult | None, t_s: float) -> np.ndarray | None:
        """World landmarks (33, 3) for ``pose`` (None while warming up or without a pose)."""
        from runtime.vision.world import BLAZEPOSE_TO_CAMERA, ground_monocular, pose_arrays, root_translation

        if pose is None:
            return None
        if not self.ready:
            self._buf.append(pose)
            self._t.append(t_s)
            if len(self._buf) < self.warmup_frames:
                return None
            g = ground_monocular(pose_arrays(self._buf, np.asarray(self._t)), self.camera, self.height_m,
                                 heading="walking")
            self.scale, self._R, self._cam_pos = g.scale, g.rotation_world_from_camera, g.camera_position_m
            self.notes = list(g.notes) + [f"grounding fixed after {len(self._buf)} warm-up frames"]
            self.ready = True
            self._buf = []
        W = pose.world_xyz @ BLAZEPOSE_TO_CAMERA.T
        T = root_translation(W[None], pose.image_xy[None], pose.visibility[None], self.camera, self.scale)[0]
        if not np.isfinite(T).all():
            return None
        cam = self.scale * W + T
        return cam @ self._R.T + self._cam_pos


class LiveFrontEnd:
    """Tracker + anonymiser + online grounding; ``process(frame, capture_ns)`` per frame."""

    def __init__(self, tracker: Any, anonymiser: Any, grounding: OnlineGrounding, prompt: Prompt,
                 preview: Any = None, backend_name: str = "") -> None:
        self.tracker, self.anonymiser, self.grounding, self.prompt = tracker, anonymiser, grounding, prompt
        from runtime.vision.anonymise import Anonymiser

        self.full_anonymiser = Anonymiser()          # with its own person detector (frames before the prompt)
        self.preview = preview
        self.started = False
        self.counts = {"frames": 0, "before_prompt": 0, "tracked": 0, "lost": 0, "grounded": 0}
        self.description = (f"vision: prompted-person tracking ({backend_name}) from frame {prompt.frame} "
                            f"box {tuple(round(v) for v in (prompt.bbox.x0, prompt.bbox.y0, prompt.bbox.x1, prompt.bbox.y1))}"
                            f" -> anonymisation (faces + heads) -> monocular world grounding "
                            f"(warm-up {grounding.warmup_frames} frames)")

    def process(self, frame: Any, capture_ns: int):
        self.counts["frames"] += 1
        t0 = time.perf_counter()
        pose = None
        tf = None
        if frame.index < self.prompt.frame:
            self.counts["before_prompt"] += 1
        elif not self.started:
            tf = self.tracker.start(frame.image, frame.index, capture_ns, self.prompt.bbox)
            self.started = True
            pose = tf.pose
        else:
            tf = self.tracker.update(frame.image, frame.index, capture_ns)
            pose = tf.pose
        if frame.index >= self.prompt.frame:
            self.counts["tracked" if pose is not None else "lost"] += 1
        t1 = time.perf_counter()
        if self.preview is not None and self.preview.wants(self.counts["frames"] - 1):
            # Anonymised before it leaves this process (the only way out for an image); frames that are
            # neither stored, shown nor sent are not anonymised (nothing of them leaves the stage).
            # the tracker's own detections (every head and body it saw) spare a second detector pass; before the
            # prompt frame there are none, so the anonymiser's own detector runs
            if tf is not None:
                self.preview.write(self.anonymiser.anonymize(frame.image, capture_ns, [pose] if pose is not None else [],
                                                             heads=tf.heads, people=tf.others))
            else:
                self.preview.write(self.full_anonymiser.anonymize(frame.image, capture_ns))
        t2 = time.perf_counter()
        world = self.grounding.step(pose, frame.t_capture_ns * 1e-9)
        t3 = time.perf_counter()
        if world is None:
            return FrontEndOutput(False, np.full((33, 3), np.nan), np.zeros(33), t1 - t0, t2 - t1, t3 - t2)
        self.counts["grounded"] += 1
        return FrontEndOutput(True, world, pose.visibility, t1 - t0, t2 - t1, t3 - t2)

    def close(self) -> dict[str, Any]:
        if self.preview is not None:
            self.preview.close()
        self.anonymiser.close()
        self.full_anonymiser.close()
        regions = dict(self.anonymiser.regions_by_source)
        for k, v in self.full_anonymiser.regions_by_source.items():
            regions[k] = regions.get(k, 0) + v
        return {**self.counts, "grounding": self.grounding.notes, "anonymised_regions": regions}


class SnapshotWriter:
    """Every ``every``-th anonymised frame as a PNG in ``folder`` (for the run report); only
    :class:`runtime.core.privacy.AnonymizedFrame` objects are accepted (``runtime.report.image_sinks``)."""

    def __init__(self, folder: str, every: int = 30) -> None:
        from pathlib import Path

        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.every, self.n, self.written = int(every), 0, 0

    def wants(self, n: int) -> bool:
        """Whether the ``n``-th processed frame is written."""
        return n % self.every == 0

    def write(self, frame: Any) -> None:
        from runtime.report.image_sinks import write_report_image

        write_report_image(frame, self.folder / f"frame_{self.written:05d}.png")
        self.written += 1

    def close(self) -> None:
        pass


def build_front_end(spec: Any) -> LiveFrontEnd:
    """The factory the vision process calls with its :class:`runtime.vision.process.VisionSpec`."""
    from runtime.vision.anonymise import Anonymiser
    from runtime.vision.calibration import guess_intrinsics
    from runtime.vision.frame_sources import open_source
    from runtime.vision.pose_mediapipe import MediaPipePose, PoseDetector
    from runtime.vision.prompts import parse_interactions
    from runtime.vision.tracking import PromptedTracker

    prompt = Prompt.from_dict(spec.prompt)
    src = open_source(spec.source)
    width, height = getattr(src, "width", None), getattr(src, "height", None)
    src.close()
    if not width or not height:
        raise ValueError(f"source {spec.source!r}: image size unknown; cannot set up the camera model")
    camera = guess_intrinsics(width, height)
    pose = MediaPipePose()
    interaction = parse_interactions(", ".join(prompt.interaction)) if prompt.interaction else None
    tracker = PromptedTracker(pose, PoseDetector(), interaction=interaction)
    preview = SnapshotWriter(spec.preview_path) if spec.preview_path else None
    return LiveFrontEnd(tracker, Anonymiser(use_person_detector=False), OnlineGrounding(camera, spec.subject_height_m),
                        prompt, preview, backend_name=pose.name)


@dataclass
class LandmarkTrack:
    """The front end's output for every frame of a source, computed ahead (``precompute_landmarks``).

    ``t_s`` (N,) the source's timeline; ``world_m`` (N, 33, 3) z up (NaN where invalid); ``visibility``
    (N, 33); ``valid`` (N,); ``stage_s`` per-frame seconds of pose, anonymisation, grounding; ``summary``.
    """

    source: str
    t_s: np.ndarray
    world_m: np.ndarray
    visibility: np.ndarray
    valid: np.ndarray
    stage_s: dict[str, np.ndarray]
    summary: dict[str, Any]

    def save(self, path: str) -> None:
        import json

        np.savez_compressed(path, t_s=self.t_s, world_m=self.world_m, visibility=self.visibility, valid=self.valid,
                            **{f"stage_{k}": v for k, v in self.stage_s.items()},
                            meta=np.array(json.dumps({"source": self.source, "summary": self.summary})))

    @staticmethod
    def load(path: str) -> "LandmarkTrack":
        import json

        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            stages = {k[len("stage_"):]: z[k] for k in z.files if k.startswith("stage_")}
            return LandmarkTrack(meta["source"], z["t_s"], z["world_m"], z["visibility"], z["valid"], stages,
                                 meta["summary"])


def precompute_landmarks(spec: Any, progress: Any = None) -> LandmarkTrack:
    """Run the live front end (same code, same causal grounding) over every frame of ``spec.source``, unpaced."""
    from runtime.vision.frame_sources import open_source

    front = build_front_end(spec)
    src = open_source(spec.source)
    rows: list[tuple[float, Any]] = []
    n_total = getattr(src, "frame_count", 0) or 0
    try:
        for frame in src:
            out = front.process(frame, frame.t_capture_ns)
            rows.append((frame.t_capture_ns * 1e-9, out))
            if progress is not None and (len(rows) % 10 == 0):
                progress(len(rows), n_total)
            if spec.max_frames is not None and len(rows) >= spec.max_frames:
                break
    finally:
        src.close()
        summary = front.close()
    n = len(rows)
    if n == 0:
        raise ValueError(f"source {spec.source!r}: no frames")
    stage = {k: np.array([getattr(o, f"{k}_s") for _, o in rows]) for k in ("pose", "anonymise", "ground")}
    tracked = stage["pose"][np.array([o.valid for _, o in rows])] if any(o.valid for _, o in rows) else stage["pose"]
    summary["pose_ms_per_frame"] = {"median": float(np.median(tracked) * 1e3), "p99": float(np.percentile(tracked, 99) * 1e3)}
    return LandmarkTrack(str(spec.source), np.array([t for t, _ in rows]),
                         np.stack([o.world_m for _, o in rows]), np.stack([o.visibility for _, o in rows]),
                         np.array([o.valid for _, o in rows]), stage, summary)
