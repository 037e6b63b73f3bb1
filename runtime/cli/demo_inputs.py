"""The inputs of ``exo demo`` and ``exo run --replay``: a recorded marker trial or a video, each turned into a
pipeline factory for the live loops and, where the whole input is known ahead, the offline triple of
``exo demo --offline``."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The walking woman of the sports2d demo video at frame 40 (pixels; tests/test_vision_tracking.py follows her
#: from there to frame 198, where she leaves the picture).
DEMO_PROMPT_BBOX = "1400,500,1700,990"
DEMO_PROMPT_FRAME = 40
#: Niceness change of the live vision process: SCHED_OTHER work of this machine (builds, tests) yields to it; the
#: control processes (estimation, torque, plant) are SCHED_FIFO and above it either way.
VISION_NICE = -10
#: Low-pass of the estimation chain on monocular video landmarks (Hz); lab markers use 6 Hz.
VIDEO_CUTOFF_HZ = 3.0

#: ``factory(n_joints, level, now_ns, extra=None) -> pipeline`` as ``runtime.session.RunSession`` calls it.
PipelineFactory = Callable[..., Any]
#: ``make_assistance(now_ns) -> assistance stage``.
AssistanceFactory = Callable[[int], Any]


@dataclass(frozen=True)
class OfflineInput:
    """What ``exo demo --offline`` runs: the estimator, the whole recording at the loop rate, the assistance."""

    estimator: Any                  # runtime.estimation.chain.KinematicsToLoads
    recording: Any                  # a recording resampled to the estimation rate (time_s in s, rate_hz in Hz)
    make_assistance: AssistanceFactory


@dataclass(frozen=True)
class DemoInput:
    """An input of the live loops: the pipeline ``factory``; ``offline`` when the input is recorded ahead (None
    for live vision, which only exists in real time)."""

    factory: PipelineFactory
    offline: OfflineInput | None


def _side(subject: Any) -> str:
    return subject.side if subject.side != "both" else "right"


def replay_input(replay: str, device: Any, subject: Any, markerset: str | None) -> DemoInput:
    """A recorded marker trial replayed through the real estimation chain.

    ``replay``: the name of a shared trial (``PS_ss1`` ... ``DM_og6``: its marker set, mass, height and side
    come with it) or a ``.trc``/``.c3d`` path (``markerset`` and the subject file give the rest)."""
    from models.io.shared_trials import shared_trials
    from runtime.cli.doctor import shared_data_dir
    from runtime.estimation.chain import (
        EstimatorParams,
        KinematicsToLoads,
        load_marker_recording,
        resample_hold,
    )
    from runtime.pipeline.stages import assistance_stage, replay_estimation_pipeline

    trials = {t.name: t for t in shared_trials(shared_data_dir())} if not Path(replay).suffix else {}
    if trials:
        if replay not in trials:
            raise ValueError(f"--replay = {replay!r}: not a file and not a shared trial; known: {', '.join(trials)}")
        t = trials[replay]
        trc, mset, mass, height, side = t.trc, t.markerset, t.mass_kg, t.height_m, t.side
    else:
        if not markerset:
            raise ValueError(f"--replay = {replay!r}: a marker file needs --markerset (an .osim or marker set .xml)")
        side = _side(subject)
        trc, mset, mass, height = replay, markerset, subject.mass_kg, subject.height_m
    rate = device.estimation.rate_hz
    print(f"input: replay of {Path(trc).name} (markers) through the estimation chain at {rate:g} Hz; "
          f"subject {mass:g} kg, {height:g} m, {side} knee", flush=True)
    est = KinematicsToLoads.for_subject(mset, EstimatorParams(mass, height, side, rate_hz=rate, kcf=device.estimation.kcf))
    rec = resample_hold(load_marker_recording(trc, est.marker_names, est.torso), rate)
    names = [j.name for j in device.joints]
    print(f"estimation chain lag {est.lag_s * 1e3:.0f} ms (causal filters); recording {rec.time_s.size} frames, "
          f"restarted (filters reset) at its end; warmed up in {est.warm_up() * 1e3:.0f} ms", flush=True)

    def make_assistance(now_ns: int) -> Any:
        return assistance_stage(device, subject, names, side, now_ns, est)

    def factory(n, level, now_ns, extra=None):
        return replay_estimation_pipeline(n, now_ns, estimator=est, recording=rec, extra=extra,
                                          assistance=make_assistance(now_ns))
    return DemoInput(factory, OfflineInput(est, rec, make_assistance))


def video_input(video: str | None, prompt: dict, device: Any, subject: Any, out: Path, live_vision: bool,
                metadata: dict) -> DemoInput:
    """A video (default: the sports2d demo) as the camera; ``metadata`` gets the input, fallbacks and length.

    ``live_vision`` (``exo demo --live-vision``): the vision process runs the ONNX tracker, grounding and the
    bounded anonymisation on each frame of the paced video as it arrives (frames it cannot take in time are
    dropped and counted with the reason). Otherwise (``--replay-landmarks``, the default) the same front end runs over every
    frame first (cached in ``runs/cache``) and its landmarks are released on the video's timeline."""
    from runtime.cli.landmark_cache import cached_landmarks
    from runtime.estimation.chain import EstimatorParams, KinematicsToLoads
    from runtime.pipeline.stages import assistance_stage, landmark_estimation_pipeline
    from runtime.vision.process import (
        LandmarkCapture,
        LandmarkReplayCapture,
        VisionProcess,
    )

    if video is None:
        from runtime.vision.footage import sports2d_demo_video

        video = str(sports2d_demo_video())
    side = _side(subject)
    rate = device.estimation.rate_hz
    if device.estimation.monocular_fit:     # refuse before any work: a lag over the staleness limit faults every run
        from runtime.vision.frame_sources import open_source
        from runtime.vision.front_end import check_fit_lag

        src = open_source(video)
        fit_lag_s = check_fit_lag(float(src.fps or 0.0), device.torque_loop.stale_after_s, loop_rate_hz=rate)
        src.close()
    # Monocular landmarks are far noisier than lab markers: 3 Hz instead of 6 Hz (measured on the sports2d clip:
    # KEM p5..p95 -45..47 %BW*ht at 6 Hz, -17..17 at 3 Hz; the lag grows accordingly, printed below).
    est = KinematicsToLoads.for_landmarks(EstimatorParams(subject.mass_kg, subject.height_m, side, rate_hz=rate,
                                                          cutoff_hz=VIDEO_CUTOFF_HZ, kcf=device.estimation.kcf))
    names = [j.name for j in device.joints]
    track = None
    if live_vision:
        vision = VisionProcess(dict(source=video, prompt=prompt, subject_height_m=subject.height_m,
                                    preview_path=str(out / "frames"), monocular_fit=device.estimation.monocular_fit,
                                    anonymise="bounded", nice=VISION_NICE, pin_own_core=True, preload=Path(video).is_file()))
        print(f"input: {Path(video).name} paced at its frame rate; vision process starting (pose models load) ...",
              flush=True)
        vision.start()
        description = vision.description + " (live, own process)"
    else:
        track = cached_landmarks(video, prompt, subject.height_m, out, monocular_fit=device.estimation.monocular_fit)
        pose = track.summary.get("pose_ms_per_frame", {})
        description = (f"vision: {Path(video).name}, landmarks computed ahead by the same front end (pose "
                       f"{pose.get('median', float('nan')):.0f} ms/frame median here, above the camera's "
                       f"{1e3 * (track.t_s[-1] - track.t_s[0]) / max(track.t_s.size - 1, 1):.0f} ms frame period), "
                       f"released on the video's timeline")
        print(f"input: {description}; {int(track.valid.sum())}/{track.t_s.size} frames with the prompted person "
              "grounded", flush=True)
    if device.estimation.monocular_fit:
        from models.kinematics.monocular_params import MonocularFitParams

        print(f"vision: grounded by the fixed-lag model fit, {MonocularFitParams().lag_frames_at(src.fps)} camera frames "
              f"({fit_lag_s * 1e3:.0f} ms) late (stamped with the frame they describe, so the command age includes "
              "the lag)", flush=True)
    print(f"estimation chain at {rate:g} Hz on landmarks held between camera frames; lag {est.lag_s * 1e3:.0f} ms "
          f"(causal filters); warmed up in {est.warm_up() * 1e3:.0f} ms", flush=True)
    fallbacks = []
    if not live_vision:
        fallbacks.append("vision: --replay-landmarks (the default here): landmarks computed ahead by the same front "
                         "end and released on the video's timeline, because the live front end (--live-vision), which "
                         "holds 29.5-30 of 30 frames/s on this 2-core CPU, still has capture -> CAN p99 56-83 ms "
                         "(pose p50 20-25 ms) and a command age that now and then passes the 0.1 s staleness limit, "
                         "which latches STALE; end-to-end latency excludes pose inference")
    for line in fallbacks:
        print(f"fallback: {line}", flush=True)
    backend = description.split("tracking (", 1)[1].split(")", 1)[0] if "tracking (" in description \
        else "landmarks computed ahead (--replay-landmarks)"
    metadata.update(input={"video": video, "prompt": prompt, "live_vision": live_vision,
                           "mode": "live" if live_vision else "replay-landmarks", "description": description},
                    fallbacks=fallbacks, providers={"pose": backend})
    if track is not None:
        metadata["vision_precompute"] = track.summary
        metadata["input_seconds"] = float(track.t_s[-1] - track.t_s[0])
    else:
        from runtime.vision.frame_sources import open_source

        src = open_source(video)
        metadata["input_seconds"] = (getattr(src, "frame_count", 0) or 0) / (src.fps or 30.0) or 10.0
        src.close()

    def make_assistance(now_ns: int) -> Any:
        return assistance_stage(device, subject, names, side, now_ns, est)

    def factory(n, level, now_ns, extra=None):
        if live_vision:
            capture = LandmarkCapture(vision, est.marker_names, now_ns)
            vision.go()
        else:
            capture = LandmarkReplayCapture(track, est.marker_names, now_ns, loop_rate_hz=rate)
        return landmark_estimation_pipeline(n, now_ns, estimator=est, capture=capture, source_description=description,
                                            assistance=make_assistance(now_ns), extra=extra)
    if track is None:
        return DemoInput(factory, None)
    from runtime.estimation.offline import landmark_recording

    return DemoInput(factory, OfflineInput(est, landmark_recording(track, est.marker_names, rate), make_assistance))
