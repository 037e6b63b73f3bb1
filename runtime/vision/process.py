"""The vision stage in its own process: frames -> anonymised frames + the prompted person's world landmarks.

Pose inference takes 15-25 ms per frame on this CPU (BlazePose full), more than a 60 Hz cycle, and holds
the GIL; so it runs in a spawned process of its own, at the camera's rate, and publishes each result into
a seqlock buffer in shared memory (``runtime.core.shared_memory.LatestValueBuffer``). The 60 Hz estimation
loop takes the newest landmarks each cycle (:class:`LandmarkCapture`): a new frame runs the estimation
chain, a cycle without one holds the last estimate (a 30 fps video feeds the 60 Hz loop every other cycle;
said at start). Frames older than ``stale_after_s`` make the estimate invalid and the assistance zero.

The record carries the frame's capture time (``CLOCK_MONOTONIC`` ns; for a video file, the frame's slot on
the paced schedule, as a camera would stamp its exposure, so decoding late counts as latency), so the latency
from capture to the CAN write is measured end to end by the torque loop (command age), pose included. The
landmarks are published before the frame is anonymised (``LiveFrontEnd.process(on_landmarks=...)``); each
frame the grabber drops is counted with what the process was doing (pose, ground, publish, anonymise), and
:func:`live_summary` gives the rate achieved, the per-stage costs and capture -> publish latency.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import time
import traceback
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np

from runtime.core.shared_memory import LatestValueBuffer
from runtime.vision.pose_types import N_LANDMARKS

LANDMARK_DTYPE = np.dtype([
    ("frame_index", np.int64),          # index in the source
    ("capture_ns", np.int64),           # CLOCK_MONOTONIC capture (release) time
    ("t_s", np.float64),                # the source's own timeline (s)
    ("done_ns", np.int64),              # CLOCK_MONOTONIC when the landmarks were ready
    ("valid", np.uint8),                # 1: the prompted person was found this frame
    ("world_m", np.float64, (N_LANDMARKS, 3)),   # world, z up, floor at 0, metres
    ("visibility", np.float64, (N_LANDMARKS,)),
    ("produced", np.int64),             # frames read from the source so far
    ("dropped", np.int64),              # frames the vision process could not take in time
    ("pose_s", np.float64), ("ground_s", np.float64),
    ("anonymise_s", np.float64),        # the previous frame's (landmarks are published before anonymising)
    ("reprojection_px", np.float64),    # the model fit's mean reprojection error (NaN without a fit)
    ("landmarks_used_frac", np.float64),  # fraction of the model's landmarks the fit used (NaN without a fit)
])


@dataclass(frozen=True)
class VisionSpec:
    """What the vision process needs (picklable); the per-frame front end is built from it by
    :func:`runtime.vision.front_end.build_front_end`."""

    source: str                                  # video file, image folder, camera:N, mcap:LOG#TOPIC
    shm_name: str
    prompt: dict[str, Any] = field(default_factory=dict)   # bbox, bbox_frame, describe, interaction
    subject_height_m: float = 1.7
    backend: str = "auto"                        # "onnx", "mediapipe" or "auto" (ONNX when built)
    preview_path: str | None = None              # anonymised video written here (only anonymised frames)
    max_frames: int | None = None
    loop: bool = False
    monocular_fit: bool = False                  # ground by the fixed-lag model fit (front_end.FittedGrounding)
    pin_own_core: bool = False                   # pin this process to its own CPU (runtime.core.realtime.pin_to_own_core)
    anonymise: str = "full"                      # "bounded": runtime.vision.anonymise_live.LiveAnonymiser (live)
    nice: int = 0                                # niceness change of this process (< 0: ahead of other SCHED_OTHER work)
    preload: bool = False                        # decode a file source into memory before the clock starts
                                                 # (frame_sources.PreloadedSource: a camera delivers decoded frames)

    def __post_init__(self) -> None:
        if self.anonymise not in ("full", "bounded"):
            raise ValueError(f"anonymise = {self.anonymise!r}: 'full' or 'bounded'")


def _ms(x: list[float] | np.ndarray) -> dict[str, float]:
    """p50, p99, max, mean (ms) of seconds ``x``."""
    a = np.asarray(x, dtype=float) * 1e3
    if a.size == 0:
        return {"count": 0}
    return {"count": int(a.size), "p50": float(np.median(a)), "p99": float(np.percentile(a, 99)),
            "max": float(a.max()), "mean": float(a.mean())}


def live_summary(rows: np.ndarray, produced: int, dropped: int, fps: float | None) -> dict[str, Any]:
    """What the live front end achieved: ``rows`` (N,) of :data:`FRAME_STATS_DTYPE`, one per processed frame.

    ``rate_hz``: processed frames per second of capture time (first to last processed frame, plus one camera
    period); ``pose_ms``: landmarks + detector (when it ran), frames from the prompt on; ``publish_ms``:
    capture (paced release) -> landmarks in shared memory, pose included; ``anonymise_ms``: inline cost per frame."""
    out: dict[str, Any] = {"processed": int(rows.size), "produced": int(produced), "dropped": int(dropped),
                           "dropped_frac": float(dropped / produced) if produced else 0.0,
                           "camera_fps": float(fps) if fps else None}
    if rows.size == 0:
        return out
    period = 1.0 / fps if fps else 0.0
    span = (rows["capture_ns"][-1] - rows["capture_ns"][0]) * 1e-9 + period
    out["rate_hz"] = float(rows.size / span) if span > 0 else None
    tracked = rows[rows["tracked"] == 1]
    posed = rows[rows["posed"] == 1]
    out["pose_ms"] = _ms(posed["pose_s"])
    out["pose_tracked_ms"] = _ms(tracked["pose_s"][tracked["detector"] == 0])
    out["pose_with_detector_ms"] = _ms(posed["pose_s"][posed["detector"] == 1])
    out["detector_frames"] = int(posed["detector"].sum())
    out["ground_ms"] = _ms(rows["ground_s"])
    out["anonymise_ms"] = _ms(rows["anonymise_s"])
    out["publish_ms"] = _ms((rows["done_ns"] - rows["capture_ns"]) * 1e-9)
    out["frame_ms"] = _ms((rows["end_ns"] - rows["start_ns"]) * 1e-9)
    return out


#: per processed frame, kept in the vision process for :func:`live_summary`
FRAME_STATS_DTYPE = np.dtype([("index", np.int64), ("capture_ns", np.int64), ("start_ns", np.int64),
                              ("done_ns", np.int64), ("end_ns", np.int64), ("pose_s", np.float64),
                              ("ground_s", np.float64), ("anonymise_s", np.float64), ("tracked", np.uint8),
                              ("detector", np.uint8), ("posed", np.uint8)])


def vision_process_main(spec: VisionSpec, conn) -> None:
    """Entry point of the spawned process: runs until the source ends or the parent asks to stop."""
    from runtime.vision.frame_sources import LatestFrameGrabber, open_source
    from runtime.vision.front_end import build_front_end, warm_grounding_kernels

    buf = LatestValueBuffer.attach(spec.shm_name, LANDMARK_DTYPE)
    rec = np.zeros(1, dtype=LANDMARK_DTYPE)
    result: dict[str, Any] = {"frames": 0, "found": 0, "errors": []}
    front = grabber = None
    stats = np.zeros(4096, dtype=FRAME_STATS_DTYPE)
    n = 0
    try:
        if spec.pin_own_core:
            from runtime.core.realtime import pin_to_own_core
            result["pinned"] = pin_to_own_core().as_dict()
        if spec.nice:
            try:
                result["nice"] = os.nice(spec.nice)
            except OSError as exc:
                result["nice"] = f"refused: {exc}"
        front = build_front_end(spec)
        result["kernel_warm_up_s"] = warm_grounding_kernels()
        source = None
        if spec.preload:
            from runtime.vision.frame_sources import PreloadedSource

            source = PreloadedSource(open_source(spec.source))
            result["preload"] = {"frames": source.frame_count, "bytes": source.bytes, "decode_s": source.decode_s}
        conn.send({"event": "ready", "description": front.description, "preload": result.get("preload")})
        if conn.recv() != "go":              # wait until the estimation loop is about to run (or "stop")
            return
        if source is None:
            source = open_source(spec.source)
        grabber = LatestFrameGrabber(source, pace=True, busy_reason=lambda: front.stage)
        last_anonymise_s = 0.0
        while True:
            if conn.poll(0):
                if conn.recv() == "stop":
                    break
            frame = grabber.get(timeout_s=0.5)
            if frame is None:
                if grabber.finished:
                    break
                continue
            start_ns = time.monotonic_ns()
            capture_ns = grabber.last_due_ns    # its slot on the paced schedule = the emulated exposure

            def publish(out, frame=frame, capture_ns=capture_ns, anonymise_s=last_anonymise_s) -> None:
                _fill_record(rec[0], frame, capture_ns, out, grabber.stats, anonymise_s)
                buf.write(rec)

            out = front.process(frame, capture_ns, on_landmarks=publish)
            last_anonymise_s = out.anonymise_s
            if n == stats.size:
                stats = np.concatenate([stats, np.zeros_like(stats)])
            stats[n] = (frame.index, capture_ns, start_ns, rec[0]["done_ns"], time.monotonic_ns(), out.pose_s,
                        out.ground_s, out.anonymise_s, int(out.extras.get("tracked", out.valid)),
                        int(out.extras.get("detector_ran", False)), int(out.extras.get("posed", True)))
            n += 1
            result["frames"] += 1
            result["found"] += int(out.valid)
            if spec.max_frames is not None and result["frames"] >= spec.max_frames:
                break
    except Exception as exc:  # reported to the parent; the estimation side sees stale landmarks and zeroes torque
        result["errors"].append(f"{type(exc).__name__}: {exc}")
        result["traceback"] = traceback.format_exc(limit=6)
    finally:
        if grabber is not None:
            grabber.close()
            st = grabber.stats
            result["grabber"] = {"produced": st.produced, "delivered": st.delivered, "dropped": st.dropped,
                                 "dropped_by_reason": dict(st.dropped_by_reason)}
            result["live"] = live_summary(stats[:n], st.produced, st.dropped, grabber.rate_hz)
            rows = stats[:n]
            t0 = int(rows["capture_ns"][0]) if n else 0
            # per processed frame: index, capture and landmarks-published times (ms from the first capture),
            # pose ms, whether the detector ran
            result["frame_log"] = [[int(r["index"]), round((int(r["capture_ns"]) - t0) * 1e-6, 2),
                                    round((int(r["done_ns"]) - t0) * 1e-6, 2), round(float(r["pose_s"]) * 1e3, 2),
                                    int(r["detector"])] for r in rows]
            result["dropped_indices"] = list(st.dropped_indices)
        if front is not None:
            result["front_end"] = front.close()
        buf.close()
        try:
            conn.send({"event": "done", **result})
        except (BrokenPipeError, OSError):
            pass


def _fill_record(r: Any, frame: Any, capture_ns: int, out: Any, grabber_stats: Any, anonymise_s: float) -> None:
    """One :data:`LANDMARK_DTYPE` record of ``out`` (a :class:`runtime.vision.front_end.FrontEndOutput`)."""
    r["frame_index"] = frame.index
    # the fixed-lag fit describes an earlier frame: its capture time, so the command age includes the lag
    r["capture_ns"] = capture_ns if out.described_capture_ns is None else out.described_capture_ns
    r["t_s"] = frame.t_capture_ns * 1e-9 if out.described_t_s is None else out.described_t_s
    r["done_ns"] = time.monotonic_ns()
    r["valid"] = 1 if out.valid else 0
    r["world_m"] = out.world_m if out.valid else np.nan
    r["visibility"] = out.visibility if out.valid else 0.0
    r["produced"] = grabber_stats.produced
    r["dropped"] = grabber_stats.dropped
    r["pose_s"], r["anonymise_s"], r["ground_s"] = out.pose_s, anonymise_s, out.ground_s
    r["reprojection_px"], r["landmarks_used_frac"] = out.reprojection_px, out.landmarks_used_frac


class VisionProcess:
    """Starts :func:`vision_process_main` (spawn) and owns the landmark buffer."""

    def __init__(self, spec_kwargs: dict[str, Any]) -> None:
        self.buffer = LatestValueBuffer(LANDMARK_DTYPE)
        self.spec = VisionSpec(shm_name=self.buffer.name, **spec_kwargs)
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe(duplex=True)
        self._child = child
        self.proc = ctx.Process(target=vision_process_main, args=(self.spec, child), name="exo-vision", daemon=True)
        self.description = ""
        self.preload: dict[str, Any] | None = None   # PreloadedSource's frames, bytes, decode_s (when preloaded)
        self.result: dict[str, Any] = {}

    def start(self, timeout_s: float = 120.0) -> None:
        """Start and wait until the front end is built (models loaded)."""
        self.proc.start()
        self._child.close()
        if not self._conn.poll(timeout_s):
            self.stop()
            raise RuntimeError(f"vision process did not become ready within {timeout_s:g} s")
        msg = self._conn.recv()
        if msg.get("event") != "ready":
            self.result = msg
            raise RuntimeError(f"vision process failed at start: {'; '.join(msg.get('errors', []))}\n"
                               f"{msg.get('traceback', '')}")
        self.description = msg["description"]
        self.preload = msg.get("preload")

    def go(self) -> None:
        """Start reading the source (the capture clock starts now)."""
        self._conn.send("go")

    def stop(self, timeout_s: float = 10.0) -> dict[str, Any]:
        """Ask it to stop; return its final counters (frames, found, dropped, errors)."""
        try:
            self._conn.send("stop")
        except (BrokenPipeError, OSError):
            pass
        t_end = time.monotonic() + timeout_s
        while time.monotonic() < t_end:
            if self._conn.poll(0.1):
                try:
                    msg = self._conn.recv()
                except EOFError:
                    break
                if msg.get("event") == "done":
                    self.result = msg
                    break
            elif not self.proc.is_alive():
                break
        self.proc.join(timeout=2.0)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(timeout=2.0)
            self.result.setdefault("errors", []).append("vision process did not stop; terminated")
        self.buffer.close()
        return self.result


class LandmarkCapture:
    """Pipeline stage: the newest landmarks from the vision process as the estimation chain's markers.

    New frame: ``frame.markers_m`` = the landmarks the marker set uses (NaN where not visible enough),
    ``frame.capture_ns`` = the frame's capture time. No new frame: the last landmarks again (sample and
    hold: a 30 fps camera feeds the 60 Hz chain every other cycle, so the chain's filters run at the loop
    rate on a held input). Landmarks older than ``stale_after_s``: ``frame.stale`` set, the assistance
    stage zeroes the torque.
    """

    name = "capture"

    def __init__(self, vision: VisionProcess, marker_names: tuple[str, ...], now_ns: Callable[[], int], *,
                 min_visibility: float = 0.5, stale_after_s: float = 0.2) -> None:
        from runtime.vision.pose_types import BLAZEPOSE_LANDMARKS

        self.vision = vision
        self._idx = np.array([BLAZEPOSE_LANDMARKS.index(n) for n in marker_names], dtype=int)
        self._rec = np.zeros(1, dtype=LANDMARK_DTYPE)
        self._now = now_ns
        self.min_visibility = float(min_visibility)
        self.stale_after_ns = int(stale_after_s * 1e9)
        self._last_seq = 0
        self.frames = 0
        self.holds = 0
        self.stale_cycles = 0
        self.last_capture_ns = 0
        self._held: np.ndarray | None = None

    def step(self, frame) -> None:
        seq = self.vision.buffer.read(self._rec)
        frame.restart = False
        frame.markers_m = self._held
        if seq > self._last_seq:
            self._last_seq = seq
            r = self._rec[0]
            self.last_capture_ns = int(r["capture_ns"])
            frame.capture_ns = self.last_capture_ns
            frame.t_s = float(r["t_s"])
            m = np.array(r["world_m"][self._idx], dtype=float)
            m[r["visibility"][self._idx] < self.min_visibility] = np.nan
            self._held = m if r["valid"] else np.full_like(m, np.nan)
            frame.markers_m = self._held
            frame.vision_s = {"pose": float(r["pose_s"]), "anonymise": float(r["anonymise_s"]),
                              "ground": float(r["ground_s"])}
            frame.reprojection_px = float(r["reprojection_px"])
            self.frames += 1
        else:
            self.holds += 1
            frame.vision_s = {}
            frame.capture_ns = self.last_capture_ns or self._now()
        stale = self.last_capture_ns == 0 or self._now() - self.last_capture_ns > self.stale_after_ns
        frame.stale = stale
        self.stale_cycles += int(stale)

    def close(self) -> dict[str, Any]:
        return {"frames": self.frames, "held_cycles": self.holds, "stale_cycles": self.stale_cycles,
                "vision": self.vision.stop()}


class LandmarkReplayCapture(LandmarkCapture):
    """Pipeline stage: a precomputed :class:`runtime.vision.front_end.LandmarkTrack` released on the source's own
    timeline against the loop clock, as a camera would deliver it (frame k at start + t_k; capture time
    stamped so). Used when pose inference cannot keep up with the camera on this machine: the landmarks are
    the same code's output, computed ahead; the latency report then excludes pose inference (stated)."""

    def __init__(self, track: Any, marker_names: tuple[str, ...], now_ns: Callable[[], int], *,
                 loop_rate_hz: float = 60.0, **kw: Any) -> None:
        self.track = track
        self.half_period_ns = int(0.5e9 / loop_rate_hz)
        self._t0: int | None = None
        self._k = 0
        super().__init__(None, marker_names, now_ns, **kw)

    def step(self, frame) -> None:
        now = self._now()
        if self._t0 is None:
            # A camera is not synchronised with the loop: its frames land half a loop period after a cycle
            # start on average; start the timeline there (the latency then includes that mean wait).
            self._t0 = now + self.half_period_ns - int(self.track.t_s[0] * 1e9)
        frame.restart = False
        frame.markers_m = self._held
        k_new = None
        while self._k < self.track.t_s.size and self._t0 + int(self.track.t_s[self._k] * 1e9) <= now:
            k_new = self._k
            self._k += 1
        if k_new is not None:
            # released when frame k_new arrived, stamped with the frame it describes (the fit's lag counts)
            self.last_capture_ns = self._t0 + int(self.track.described_t_s[k_new] * 1e9)
            frame.capture_ns = self.last_capture_ns
            frame.t_s = float(self.track.described_t_s[k_new])
            frame.reprojection_px = float(self.track.reprojection_px[k_new])
            m = np.array(self.track.world_m[k_new][self._idx], dtype=float)
            m[self.track.visibility[k_new][self._idx] < self.min_visibility] = np.nan
            self._held = m if self.track.valid[k_new] else np.full_like(m, np.nan)
            frame.markers_m = self._held
            frame.vision_s = {k: float(v[k_new]) for k, v in self.track.stage_s.items()}
            self.frames += 1
        else:
            self.holds += 1
            frame.vision_s = {}
            frame.capture_ns = self.last_capture_ns or now
        stale = self.last_capture_ns == 0 or now - self.last_capture_ns > self.stale_after_ns
        frame.stale = stale
        self.stale_cycles += int(stale)

    def close(self) -> dict[str, Any]:
        return {"frames": self.frames, "held_cycles": self.holds, "stale_cycles": self.stale_cycles,
                "replayed_of": int(self.track.t_s.size)}


def spec_dict(spec: VisionSpec) -> dict[str, Any]:
    """The spec as JSON-able data (for the run summary)."""
    return asdict(spec)
