"""``exo``: the one command-line entry point of the runtime.

Subcommands (``exo <cmd> --help`` for each):

  run       run both loops with a device/subject/calibration config for N seconds, log to MCAP
  hil       run a hardware-in-the-loop scenario (faults injected at given times), log to MCAP
  report    summarise a run's log: latency table, jitter, misses, faults; PNG plots; --json
  recover   make a log truncated by a crash (SIGKILL, power loss) complete again
  analyze   a recorded trial: IK, GRF, inverse dynamics, KAM/KEM -> CSVs (or read and check trial files)
  validate  the analysis chain on every shared trial, each figure beside its anchor
  config    validate configuration files and print them with defaults filled in
  can       encode values into AK-series MIT frames, decode candump lines into values
  doctor    check this machine: real-time, CAN, ONNX Runtime, GPU, models, data
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

PKG_CONFIG = Path(__file__).resolve().parents[2] / "launch" / "config"
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


#: The walking woman of the sports2d demo video at frame 40 (pixels; tests/test_vision_tracking.py follows her
#: from there to frame 198, where she leaves the picture).
DEMO_PROMPT_BBOX = "1400,500,1700,990"
DEMO_PROMPT_FRAME = 40
#: Low-pass of the estimation chain on monocular video landmarks (Hz); lab markers use 6 Hz.
VIDEO_CUTOFF_HZ = 3.0


def _box_tuple(b) -> tuple[float, float, float, float]:
    return (b.x0, b.y0, b.x1, b.y1)


def _default(name: str) -> str:
    return str(PKG_CONFIG / name)


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=_default("device.yaml"), help="device configuration YAML (default: %(default)s)")
    p.add_argument("--subject", default=_default("subject.yaml"), help="subject profile YAML (default: %(default)s)")
    p.add_argument("--calibration", default=_default("calibration.yaml"),
                   help="actuator calibration YAML (default: %(default)s)")


def _load_configs(args):
    from runtime.core.config import check_consistency, load_calibration, load_device, load_subject

    device = load_device(args.config)
    subject = load_subject(args.subject)
    calibration = load_calibration(args.calibration)
    check_consistency(device, calibration)
    return device, subject, calibration


def _fresh_out(path: str) -> Path:
    out = Path(path)
    if (out / "telemetry").exists():
        raise FileExistsError(f"--out {out}: a log already exists there; choose another folder or delete it")
    return out


def _print_run_result(result, out: Path) -> int:
    from runtime.report.summary import format_text, load_series, summarize_log, write_plots

    series = load_series(out)
    summary = summarize_log(out, series)
    print(format_text(summary))
    plots = write_plots(series, out / "plots")
    print(f"log: {out / 'telemetry'}   summary: {out / 'summary.json'}   plots: {', '.join(p.name for p in plots)}")
    for name, rt in (result.realtime or {}).items():
        if rt:
            sched = f"SCHED_FIFO prio {rt['priority']}" if rt.get("sched_fifo") else "no real-time priority (SCHED_OTHER)"
            notes = f" ({'; '.join(rt['notes'])})" if rt.get("notes") else ""
            print(f"{name} loop: {sched}, cpus {rt.get('cpus')}, memory {'locked' if rt.get('memory_locked') else 'not locked'}{notes}")
    print(f"exit: {result.exit_reason}")
    for e in result.errors:
        print(f"error: {e}", file=sys.stderr)
    return EXIT_FAILED if result.errors else EXIT_OK


def cmd_run(args) -> int:
    from runtime.session import RunSession

    device, subject, calibration = _load_configs(args)
    out = _fresh_out(args.out)
    print(f"exo run: device '{device.device_name}', {len(device.joints)} joint(s), subject {subject.subject_id}, "
          f"{args.seconds:g} s -> {out}")
    if device.bus.interface == "sim":
        print("plant: simulated seated knee (MuJoCo, in the torque process); the main job (video -> torque over CAN "
              "into the HIL exoskeleton) is not built yet")
    factory = _replay_factory(args.replay, device, subject, args.markerset) if args.replay else None
    session = RunSession(device, subject, calibration, out, args.seconds, progress=lambda s: print(s, flush=True),
                         pipeline_factory=factory, extra_stages=_live_view_stages(args.live_view, subject, device))
    result = session.run()
    return _print_run_result(result, out)


def _replay_factory(replay: str, device, subject, markerset: str | None):
    """A pipeline factory replaying a recorded marker trial through the real estimation chain.

    ``replay``: the name of a shared trial (``PS_ss1`` ... ``DM_og6``: its marker set, mass, height and side
    come with it) or a ``.trc``/``.c3d`` path (``--markerset`` and the subject file give the rest)."""
    from runtime.estimation.chain import EstimatorParams, KinematicsToLoads, load_marker_recording, resample_hold
    from runtime.pipeline.stages import assistance_stage, replay_estimation_pipeline
    from runtime.cli.doctor import shared_data_dir
    from models.io.shared_trials import shared_trials

    trials = {t.name: t for t in shared_trials(shared_data_dir())} if not Path(replay).suffix else {}
    if trials:
        if replay not in trials:
            raise ValueError(f"--replay = {replay!r}: not a file and not a shared trial; known: {', '.join(trials)}")
        t = trials[replay]
        trc, mset, mass, height, side = t.trc, t.markerset, t.mass_kg, t.height_m, t.side
    else:
        if not markerset:
            raise ValueError(f"--replay = {replay!r}: a marker file needs --markerset (an .osim or marker set .xml)")
        side = subject.side if subject.side != "both" else "right"
        trc, mset, mass, height = replay, markerset, subject.mass_kg, subject.height_m
    rate = device.estimation.rate_hz
    print(f"input: replay of {Path(trc).name} (markers) through the estimation chain at {rate:g} Hz; "
          f"subject {mass:g} kg, {height:g} m, {side} knee", flush=True)
    est = KinematicsToLoads.for_subject(mset, EstimatorParams(mass, height, side, rate_hz=rate))
    rec = resample_hold(load_marker_recording(trc, est.marker_names), rate)
    names = [j.name for j in device.joints]
    print(f"estimation chain lag {est.lag_s * 1e3:.0f} ms (causal filters); recording {rec.time_s.size} frames, "
          f"restarted (filters reset) at its end; warmed up in {est.warm_up() * 1e3:.0f} ms", flush=True)

    def factory(n, level, now_ns, extra=None):
        return replay_estimation_pipeline(n, now_ns, estimator=est, recording=rec, extra=extra,
                                          assistance=assistance_stage(device, subject, names, side, now_ns, est))
    factory.offline = (est, rec, lambda now_ns: assistance_stage(device, subject, names, side, now_ns, est))
    return factory


def _plant_companion(device, subject, calibration, scenario, out: Path, duration_s: float):
    """The HIL plant process for a CAN device config: emulated AK drives of the calibrated actuators."""
    from runtime.control.companion import CompanionProcess

    by_name = {a.name: a for a in calibration.actuators}
    argv = [sys.executable, "-m", "hil.plant_process", "--interface", device.bus.interface,
            "--channel", device.bus.channel, "--port", str(device.bus.udp_port),
            "--duration", f"{duration_s + 30.0:g}", "--rate", f"{scenario.plant.rate_hz:g}",
            "--seed", str(scenario.plant.seed), "--status", str(out / "plant_status.json"),
            "--body-mass", f"{subject.mass_kg:g}", "--height", f"{subject.height_m:g}", "--control-stdin"]
    for j in device.joints:
        a = by_name[j.actuator]
        if a.gear_ratio != 1.0:
            raise ValueError(f"actuator {a.name}: gear_ratio = {a.gear_ratio}: the HIL plant emulates direct-drive "
                             "AK actuators on the knee (gear_ratio 1.0)")
        argv += ["--motor", f"{a.model}:{a.firmware}:{a.can_id}:{a.direction:+d}:{a.zero_offset_rad:g}"]
    return CompanionProcess("hil-plant", argv, status_path=out / "plant_status.json",
                            cwd=Path(__file__).resolve().parents[2])


def _video_factory(video: str | None, prompt: dict, device, subject, out: Path, live_vision: bool,
                   metadata: dict):
    """A pipeline factory with a video (default: the sports2d demo) as the camera.

    ``live_vision``: the vision process runs pose on the paced video in real time (frames it cannot take in
    time are dropped and counted). Otherwise the same front end runs over every frame first (cached in
    ``runs/cache``) and its landmarks are released on the video's timeline into the live loop."""
    from runtime.estimation.chain import EstimatorParams, KinematicsToLoads
    from runtime.pipeline.stages import assistance_stage, landmark_estimation_pipeline
    from runtime.vision.process import LandmarkCapture, LandmarkReplayCapture, VisionProcess, VisionSpec

    if video is None:
        from runtime.vision.footage import sports2d_demo_video

        video = str(sports2d_demo_video())
    side = subject.side if subject.side != "both" else "right"
    rate = device.estimation.rate_hz
    # Monocular landmarks are far noisier than lab markers: 3 Hz instead of 6 Hz (measured on the sports2d clip:
    # KEM p5..p95 -45..47 %BW*ht at 6 Hz, -17..17 at 3 Hz; the lag grows accordingly, printed below).
    est = KinematicsToLoads.for_landmarks(EstimatorParams(subject.mass_kg, subject.height_m, side, rate_hz=rate,
                                                          cutoff_hz=VIDEO_CUTOFF_HZ))
    names = [j.name for j in device.joints]
    if live_vision:
        vision = VisionProcess(dict(source=video, prompt=prompt, subject_height_m=subject.height_m,
                                    preview_path=str(out / "frames")))
        print(f"input: {Path(video).name} paced at its frame rate; vision process starting (pose models load) ...",
              flush=True)
        vision.start()
        description = vision.description + " (live, own process)"
    else:
        track = _cached_landmarks(video, prompt, subject.height_m, out)
        pose = track.summary.get("pose_ms_per_frame", {})
        description = (f"vision: {Path(video).name}, landmarks computed ahead by the same front end (pose "
                       f"{pose.get('median', float('nan')):.0f} ms/frame median here, above the camera's "
                       f"{1e3 * (track.t_s[-1] - track.t_s[0]) / max(track.t_s.size - 1, 1):.0f} ms frame period), "
                       f"released on the video's timeline")
        print(f"input: {description}; {int(track.valid.sum())}/{track.t_s.size} frames with the prompted person "
              "grounded", flush=True)
    print(f"estimation chain at {rate:g} Hz on landmarks held between camera frames; lag {est.lag_s * 1e3:.0f} ms "
          f"(causal filters); warmed up in {est.warm_up() * 1e3:.0f} ms", flush=True)
    fallbacks = ["pose: the mediapipe reference backend (BlazePose full, CPU) runs the tracker; the ONNX backend "
                 "(runtime.vision.pose_onnx) is not wired into the tracker yet"]
    if not live_vision:
        fallbacks.append("vision: pose per frame exceeds the camera's frame period on this CPU: landmarks computed "
                         "ahead by the same front end and released on the video's timeline; end-to-end latency "
                         "excludes pose inference")
    for line in fallbacks:
        print(f"fallback: {line}", flush=True)
    metadata.update(input={"video": video, "prompt": prompt, "live_vision": live_vision, "description": description},
                    fallbacks=fallbacks, providers={"pose": "mediapipe (TFLite XNNPACK, CPU)"})
    if not live_vision:
        metadata["vision_precompute"] = track.summary
        metadata["input_seconds"] = float(track.t_s[-1] - track.t_s[0])
    else:
        from runtime.vision.frame_sources import open_source

        src = open_source(video)
        metadata["input_seconds"] = (getattr(src, "frame_count", 0) or 0) / (src.fps or 30.0) or 10.0
        src.close()

    def factory(n, level, now_ns, extra=None):
        if live_vision:
            capture = LandmarkCapture(vision, est.marker_names, now_ns)
            vision.go()
        else:
            capture = LandmarkReplayCapture(track, est.marker_names, now_ns, loop_rate_hz=rate)
        return landmark_estimation_pipeline(n, now_ns, estimator=est, capture=capture, source_description=description,
                                            assistance=assistance_stage(device, subject, names, side, now_ns, est),
                                            extra=extra)
    if not live_vision:
        from runtime.estimation.offline import landmark_recording

        factory.offline = (est, landmark_recording(track, est.marker_names, rate),
                           lambda now_ns: assistance_stage(device, subject, names, side, now_ns, est))
    return factory


def _cached_landmarks(video: str, prompt: dict, height_m: float, out: Path):
    """The front end's landmarks for ``video``, from ``runs/cache`` when the video, prompt, height and the vision
    code are unchanged; else computed now (progress printed) and cached."""
    import hashlib

    from runtime.vision import front_end as fe
    from runtime.vision.process import VisionSpec

    h = hashlib.sha1()
    h.update(Path(video).read_bytes())
    h.update(json.dumps([prompt, height_m], sort_keys=True).encode())
    for mod in ("front_end", "tracking", "world", "pose_mediapipe", "calibration"):
        h.update((Path(fe.__file__).parent / f"{mod}.py").read_bytes())
    cache = Path("runs") / "cache" / f"landmarks-{h.hexdigest()[:16]}.npz"
    spec = VisionSpec(source=video, shm_name="", prompt=prompt, subject_height_m=height_m,
                      preview_path=str(out / "frames"))
    if cache.exists():
        print(f"vision: landmarks from the cache {cache}", flush=True)
        return fe.LandmarkTrack.load(str(cache))
    print(f"vision: running the front end over every frame of {Path(video).name} (pose, tracking, anonymisation, "
          "grounding) ...", flush=True)
    track = fe.precompute_landmarks(spec, progress=lambda i, n: print(f"  frame {i}/{n}", flush=True))
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npz")
    track.save(str(tmp))
    tmp.replace(cache)
    return track


def cmd_demo(args) -> int:
    """The main job on the embedded default: input -> estimation chain -> assistance -> safety -> CAN -> HIL plant."""
    from hil.scenario import PlantConfig
    from firmware_bridge.netns import ensure_private_netns
    from runtime.session import RunSession

    device, subject, calibration = _load_configs(args)
    if device.bus.interface == "udp_multicast":
        ensure_private_netns("exo demo over udp_multicast")   # re-executes this command if needed
    out = _fresh_out(args.out)
    out.mkdir(parents=True, exist_ok=True)
    metadata: dict = {}
    if args.replay:
        factory = _replay_factory(args.replay, device, subject, None)
        metadata["input"] = {"replay": args.replay}
    else:
        from runtime.vision.prompts import parse_bbox

        prompt = {"bbox": list(_box_tuple(parse_bbox(args.bbox))), "frame": args.prompt_frame,
                  "interaction": [args.interaction] if args.interaction else []}
        factory = _video_factory(args.video, prompt, device, subject, out, args.live_vision, metadata)
    if args.offline:
        return _demo_offline(factory, device, out, metadata)
    if args.seconds is None:
        args.seconds = 20.0 if args.replay else metadata["input_seconds"] + 1.0
    companion = None
    if device.bus.interface in ("udp_multicast", "socketcan"):
        companion = _plant_companion(device, subject, calibration, _DemoPlant(PlantConfig()), out, args.seconds)
        print(f"plant: emulated AK drives on {device.bus.interface} {device.bus.channel} (own process) on the "
              "simulated knee", flush=True)
    session = RunSession(device, subject, calibration, out, args.seconds, progress=lambda s: print(s, flush=True),
                         pipeline_factory=factory, companion=companion,
                         extra_stages=_live_view_stages(args.live_view, subject, device), metadata=metadata)
    result = session.run()
    code = _print_run_result(result, out)
    from runtime.report.html import write_html_report

    print(f"html report: {write_html_report(out)}")
    return code


def _demo_offline(factory, device, out: Path, metadata: dict) -> int:
    """``exo demo --offline``: the same chain and controller over the whole input as fast as possible."""
    from runtime.estimation.offline import progress_bar, run_pipeline_offline, write_offline

    if not hasattr(factory, "offline"):
        raise ValueError("--offline: needs a recorded input (video landmarks computed ahead, or --replay); "
                         "it cannot be combined with --live-vision")
    est, rec, make_assistance = factory.offline
    names = [j.name for j in device.joints]
    run = run_pipeline_offline(est, rec, make_assistance, len(names), progress_bar("offline"))
    files = write_offline(out, run, names, {"input": metadata.get("input"), "fallbacks": metadata.get("fallbacks")})
    r = run["result"]
    print(f"offline: {run['frames']} frames ({rec.time_s[-1] - rec.time_s[0]:.1f} s of input at {rec.rate_hz:g} Hz) in "
          f"{run['seconds']:.2f} s = {run['fps']:.0f} frames/s ({run['fps'] / rec.rate_hz:.1f}x real time); "
          f"{int(r.valid.sum())} valid estimates; peak memory {run['peak_rss_mb']:.0f} MB")
    print("wrote " + ", ".join(str(f) for f in files))
    return EXIT_OK


def _live_view_stages(port: int | None, subject, device) -> list:
    """The opt-in Foxglove live view (loopback only) as a pipeline stage, with gait-retraining feedback."""
    if port is None:
        return []
    from runtime.telemetry.live_stage import LiveViewStage

    stage = LiveViewStage(port, [j.name for j in device.joints], side=subject.side if subject.side != "both" else "right")
    print(f"live view: ws://127.0.0.1:{stage.live.port} (Foxglove; layout launch/foxglove_layout.json)", flush=True)
    return [stage]


class _DemoPlant:
    """What ``_plant_companion`` reads from a scenario: its plant settings."""

    def __init__(self, plant) -> None:
        self.plant = plant


def cmd_hil(args) -> int:
    from hil.scenario import load_scenario
    from runtime.pipeline.fault_injection import FaultInjectionStage
    from runtime.core.config import check_consistency, load_calibration, load_device, load_subject
    from runtime.session import RunSession

    scenario, base = load_scenario(args.scenario)
    device = load_device(base / scenario.device)
    subject = load_subject(base / scenario.subject)
    calibration = load_calibration(base / scenario.calibration)
    check_consistency(device, calibration)
    if device.bus.interface == "udp_multicast":
        from firmware_bridge.netns import ensure_private_netns

        ensure_private_netns("exo hil over udp_multicast")   # re-executes this command if needed
    out = _fresh_out(args.out)
    out.mkdir(parents=True, exist_ok=True)
    companion = None
    if device.bus.interface in ("udp_multicast", "socketcan"):
        companion = _plant_companion(device, subject, calibration, scenario, out, scenario.duration_s)
    plant_text = ("in-process simulated knee" if companion is None else
                  f"emulated AK drives on {device.bus.interface} {device.bus.channel} (own process) on the simulated knee")
    print(f"exo hil: scenario '{scenario.name}', {scenario.duration_s:g} s, {len(scenario.faults)} injected fault(s), "
          f"plant: {plant_text} -> {out}")
    session = RunSession(device, subject, calibration, out, scenario.duration_s,
                         progress=lambda s: print(s, flush=True), companion=companion)
    injector = FaultInjectionStage(list(scenario.faults), device.estimation.rate_hz, session)
    session.extra_stages = [injector]
    result = session.run()
    print("injected: " + ("; ".join(injector.applied) or "none"))
    return _print_run_result(result, out)


def cmd_report(args) -> int:
    from runtime.report.summary import format_text, load_series, summarize_log, write_plots

    series = load_series(args.log)
    summary = summarize_log(args.log, series)
    if not args.no_plots:
        target = Path(args.plots) if args.plots else (Path(args.log) / "plots" if Path(args.log).is_dir() else
                                                       Path(args.log).parent / "plots")
        summary["plots"] = [str(p) for p in write_plots(series, target)]
    if args.html:
        from runtime.report.html import write_html_report

        summary["html"] = str(write_html_report(args.log, series=series))
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        print(format_text(summary))
        if summary.get("plots"):
            print("plots: " + ", ".join(summary["plots"]))
        if summary.get("html"):
            print("html report: " + summary["html"])
    return EXIT_OK


def cmd_recover(args) -> int:
    from runtime.telemetry.read import is_complete, recover, resolve_log

    log = Path(args.log)
    if (log / "telemetry").is_dir():
        log = log / "telemetry"
    _, mcap_path = resolve_log(log)
    if is_complete(mcap_path) and not args.force:
        print(f"{mcap_path} is complete; nothing to recover (use --force to rewrite anyway)")
        return EXIT_OK
    res = recover(log)
    print(f"recovered {res.messages} messages on {len(res.topics)} topics into {res.out_path}"
          + (" (input was truncated)" if res.truncated else ""))
    for topic, n in sorted(res.topics.items()):
        print(f"  {topic}: {n}")
    return EXIT_OK


def cmd_analyze(args) -> int:
    if args.video:
        return _analyze_video(args)
    if args.trc or args.c3d:
        return _analyze_chain(args)
    if not args.trials:
        print("analyze: give --trc/--c3d (with --markerset, --mass-kg, --height-m, --side) for the full chain, "
              "or trial files to read and check", file=sys.stderr)
        return EXIT_USAGE
    from models.io.lab_files import summarize

    results = []
    failed = 0
    for path in args.trials:
        try:
            results.append(summarize(path))
        except (OSError, ValueError) as exc:
            failed += 1
            results.append({"path": str(path), "error": str(exc)})
    if args.json_stdout:
        print(json.dumps(results, indent=2, default=str))
    else:
        for r in results:
            print(f"{r['path']}: ERROR {r['error']}" if "error" in r else json.dumps(r, default=str))
    return EXIT_FAILED if failed else EXIT_OK


def _analyze_video(args) -> int:
    """The offline path from a video (``runtime.vision.video_analysis.analyze_video``)."""
    from runtime.vision.video_analysis import analyze_video

    frames = None
    if args.frames:
        try:
            a, b = args.frames.split(":")
            frames = (int(a) if a else 0, int(b) if b else None)
        except ValueError:
            raise ValueError(f"--frames = {args.frames!r}: use START:STOP (frame indices)") from None
    res = analyze_video(args.video, bbox=args.bbox, mask=args.mask, describe=args.describe, out_dir=args.output,
                        height_m=args.height_m, mass_kg=args.mass_kg, side=args.side or "left",
                        calibration=args.calibration, hfov_deg=args.hfov_deg, frames=frames, model=args.model)
    summary = res.summary()
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(summary, indent=2, default=str))
    print(json.dumps(summary, indent=2, default=str))
    return EXIT_OK


def _analyze_chain(args) -> int:
    import numpy as np

    from models.trial_analysis import (AnalyzeParams, analyze_trial, grf_validation, ik_validation, moment_validation,
                                       trial_kinematics, write_results)

    missing = [f"--{k.replace('_', '-')}" for k in ("markerset", "mass_kg", "height_m", "side") if getattr(args, k) is None]
    if missing:
        print(f"analyze: the full chain needs {', '.join(missing)}", file=sys.stderr)
        return EXIT_USAGE
    params = AnalyzeParams(args.mass_kg, args.height_m, args.side, model=args.model, muscles=args.muscles)
    trc = args.trc or args.c3d
    out = Path(args.output)
    print(f"analyze {Path(trc).name}: {params.model}, {args.mass_kg:g} kg, {args.height_m:g} m, {args.side} knee; "
          f"GRF from {'force plates ' + Path(args.grf).name if args.grf else 'kinematics alone'}", flush=True)
    kin = trial_kinematics(trc, args.markerset, params)
    print(f"  inverse kinematics: {kin.time_s.size} frames, marker RMS median "
          f"{float(np.nanmedian(kin.ik.residual_rms_m)) * 1e3:.1f} mm", flush=True)
    result = analyze_trial(trc, args.markerset, params, grf_path=args.grf, kin=kin, external_loads=args.external_loads)
    files = write_results(result, out)
    kcf = None
    if result.muscles is not None:
        from models.muscles.knee_contact import knee_contact_from_analysis

        kcf = knee_contact_from_analysis(kin, result)
        p_kcf = out / "knee_contact_force.csv"
        np.savetxt(p_kcf, np.column_stack([kcf.time_s, kcf.medial_n, kcf.lateral_n, kcf.total_n, kcf.medial_bw,
                                           kcf.lateral_bw, kcf.total_bw]), delimiter=",", fmt="%.6g", comments="",
                   header="time_s,medial_N,lateral_N,total_N,medial_BW,lateral_BW,total_BW")
        files.append(p_kcf)
    from runtime.telemetry.analysis_log import write_analysis_mcap

    mcap_dir = out / "analysis_mcap"
    if (mcap_dir / "metadata.yaml").exists() or mcap_dir.exists():
        import shutil

        shutil.rmtree(mcap_dir)
    files.append(write_analysis_mcap(result, mcap_dir))
    summary = result.summary()
    validation: dict = {}
    if args.ik_ref:
        validation["joint_angle_rmse_deg"] = ik_validation(result, args.ik_ref)
    if args.kcf_ref:
        if kcf is None:
            print("analyze: --kcf-ref needs --muscles (knee contact force comes from the muscle forces)", file=sys.stderr)
            return EXIT_USAGE
        from models.muscles.knee_contact import validate_against_in_vivo

        validation["knee_contact_force"] = validate_against_in_vivo(kcf, args.kcf_ref)
    if args.grf_ref:
        ref = analyze_trial(trc, args.markerset, params, grf_path=args.grf_ref, kin=kin, external_loads=args.external_loads)
        if result.grf_source == "kinematics":
            validation["grf_error_pct_bw"] = grf_validation(result, ref)
        validation["knee_moment_rmse_pct_bw_ht"] = moment_validation(result, ref)
    doc = {"summary": summary, "validation": validation, "files": [str(f) for f in files]}
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=2, default=str))
    print(json.dumps(doc, indent=2, default=str))
    return EXIT_OK


def cmd_validate(args) -> int:
    from runtime.cli.doctor import shared_data_dir
    from runtime.estimation.validate import run_validation

    doc = run_validation(Path(args.data) if args.data else shared_data_dir(), Path(args.json),
                         Path(args.output) if args.output else None)
    print(json.dumps(doc["mean"], indent=2))
    print(f"wrote {args.json}")
    return EXIT_FAILED if any("error" in t for t in doc["trials"]) else EXIT_OK


def cmd_config(args) -> int:
    device, subject, calibration = _load_configs(args)
    print(json.dumps({"device": device.model_dump(), "subject": subject.model_dump(),
                      "calibration": calibration.model_dump()}, indent=2))
    print("configuration valid", file=sys.stderr)
    return EXIT_OK


def cmd_can_encode(args) -> int:
    from firmware_bridge import ak_mit
    from firmware_bridge.motor_tables import limits_for

    if args.special:
        data = {"enter": ak_mit.ENTER_MOTOR_MODE, "exit": ak_mit.EXIT_MOTOR_MODE, "zero": ak_mit.ZERO_POSITION}[args.special]
        clamped: frozenset[str] = frozenset()
    else:
        limits = limits_for(args.model, args.firmware)
        data, clamped = ak_mit.encode_command(limits, args.position, args.velocity, args.kp, args.kd, args.torque)
    line = ak_mit.frame_to_candump(args.id, data)
    if args.json:
        print(json.dumps({"frame": line, "clamped": sorted(clamped)}))
    else:
        print(line)
        if clamped:
            print(f"clamped to the {args.model} {args.firmware} table: {', '.join(sorted(clamped))}", file=sys.stderr)
    return EXIT_OK


def cmd_can_decode(args) -> int:
    from dataclasses import asdict

    from firmware_bridge import ak_mit
    from firmware_bridge.motor_tables import limits_for

    limits = limits_for(args.model, args.firmware)
    failed = 0
    for line in args.frames:
        try:
            can_id, data = ak_mit.parse_candump(line)
            special = ak_mit.special_frame(data)
            kind = args.kind
            if kind == "auto":
                kind = "special" if special else ("reply" if can_id == args.master_id or len(data) != 8 else "command")
            if special and kind != "reply":
                out = {"frame": line, "id": can_id, "special": special}
            elif kind == "reply":
                out = {"frame": line, "id": can_id, "reply": asdict(ak_mit.decode_reply(
                    limits, data, arbitration_id=can_id, master_id=args.master_id))}
            else:
                out = {"frame": line, "id": can_id, "command": asdict(ak_mit.decode_command(limits, data))}
        except ValueError as exc:
            failed += 1
            out = {"frame": line, "error": str(exc)}
        print(json.dumps(out) if args.json else "  ".join(f"{k}={v}" for k, v in out.items()))
    return EXIT_FAILED if failed else EXIT_OK


def cmd_doctor(args) -> int:
    from runtime.cli.doctor import as_json, format_checks, run_checks

    checks = run_checks()
    print(json.dumps(as_json(checks), indent=2) if args.json else format_checks(checks))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="exo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="<command>")

    p = sub.add_parser("run", help="run both loops for N seconds and log to MCAP",
                       description="Run the estimation loop (default 60 Hz) and the torque/safety loop (default 500 Hz, "
                                   "own process) for --seconds, then fade to zero and write <out>/telemetry (rosbag2/MCAP), "
                                   "<out>/summary.json and <out>/plots. Ctrl-C fades to zero; a second Ctrl-C zeroes at once.\n"
                                   "example: exo run --seconds 10 --out runs/try1")
    _add_config_args(p)
    p.add_argument("--seconds", type=float, default=10.0, help="run length in s (default: %(default)s)")
    p.add_argument("--out", default="runs/latest", help="output folder (must not hold a log yet; default: %(default)s)")
    p.add_argument("--replay", metavar="TRIAL", help="input: a recorded marker trial through the real estimation chain "
                   "(a shared trial name such as PS_ss1, or a .trc/.c3d path with --markerset); default: the "
                   "synthetic phase-based input")
    p.add_argument("--markerset", help="marker set (.osim or .xml) for a --replay file")
    p.add_argument("--live-view", type=int, metavar="PORT", help="stream angles, KAM, KCF, torque and gait-retraining "
                   "feedback to Foxglove on ws://127.0.0.1:PORT (loopback only)")
    p.set_defaults(fn=cmd_run)

    p = sub.add_parser("demo", help="the main job: input -> estimation chain -> assistance -> CAN -> HIL exoskeleton",
                       description="Run the main job on the embedded default: a recorded input through the real-time "
                                   "estimation chain (IK, GRF, inverse dynamics, KAM/KEM, static optimisation, synergies, "
                                   "knee contact force), the assistance, the safety supervisor and the CAN bridge into the "
                                   "emulated exoskeleton drives in their own process (udp_multicast in a private network "
                                   "namespace), paced at the device's estimation rate; then the log and the report.\n"
                                   "example: exo demo --seconds 20 --out runs/demo1")
    _add_config_args(p)
    p.set_defaults(config=_default("device_hil.yaml"))
    p.add_argument("--seconds", type=float, help="run length in s (default: the video's length + 1 s; 20 s with "
                   "--replay)")
    p.add_argument("--out", default="runs/demo", help="output folder (default: %(default)s)")
    p.add_argument("--video", help="video file as the camera (default: the sports2d demo video, obtained from "
                   "its wheel into the cache)")
    p.add_argument("--bbox", default=DEMO_PROMPT_BBOX, help="the person to follow: x0,y0,x1,y1 in pixels at "
                   "--prompt-frame (default: the walking woman of the sports2d demo, %(default)s)")
    p.add_argument("--prompt-frame", type=int, default=DEMO_PROMPT_FRAME, help="frame of --bbox (default: %(default)s)")
    p.add_argument("--interaction", help="interaction label that relaxes the tracker: 'close contact' or 'occlusion'")
    p.add_argument("--live-vision", action="store_true", help="run pose on the paced video in its own process "
                   "(frames it cannot take in time are dropped); default: landmarks computed ahead by the same front "
                   "end, released on the video's timeline (pose exceeds the frame period on this CPU)")
    p.add_argument("--replay", metavar="TRIAL", help="instead of video: a recorded marker trial (e.g. PS_ss1)")
    p.add_argument("--offline", action="store_true", help="no loops, no CAN: the same estimation chain and "
                   "assistance controller over the whole input as fast as possible (progress bar; offline.csv and "
                   "offline.json with frames per second)")
    p.add_argument("--live-view", type=int, metavar="PORT", help="Foxglove live view on ws://127.0.0.1:PORT (inside "
                   "the run's private network namespace when the bus is udp_multicast: reachable from there only)")
    p.set_defaults(fn=cmd_demo)

    p = sub.add_parser("hil", help="run a hardware-in-the-loop scenario with injected faults",
                       description="Run a scenario (YAML: configs, duration, faults and their times) and write the same "
                                   "log and report as 'run'.\nexample: exo hil hil/scenarios/stale_and_estop.yaml --out runs/hil1")
    p.add_argument("scenario", help="scenario YAML (see hil/scenarios/)")
    p.add_argument("--out", default="runs/hil", help="output folder (default: %(default)s)")
    p.set_defaults(fn=cmd_hil)

    p = sub.add_parser("report", help="summarise a run's log (latency, jitter, misses, faults) and plot it",
                       description="Summarise a log written by 'run' or 'hil' (a run folder, its telemetry folder or the "
                                   ".mcap file). Truncated logs are read up to the last complete chunk.\n"
                                   "example: exo report runs/try1 --json")
    p.add_argument("log", help="run folder, rosbag2 folder or .mcap file")
    p.add_argument("--json", action="store_true", help="machine-readable figures on stdout")
    p.add_argument("--plots", help="folder for the PNG plots (default: <log>/plots)")
    p.add_argument("--no-plots", action="store_true", help="do not write plots")
    p.add_argument("--html", action="store_true", help="also write <run>/report.html (self-contained, PNGs in plots/)")
    p.set_defaults(fn=cmd_report)

    p = sub.add_parser("recover", help="complete a log truncated by a crash",
                       description="Rewrite a log whose writer was killed (no MCAP summary) into a complete rosbag2 "
                                   "folder; the original file is kept as *.truncated.\nexample: exo recover runs/try1")
    p.add_argument("log", help="run folder, rosbag2 folder or .mcap file")
    p.add_argument("--force", action="store_true", help="rewrite even a complete file")
    p.set_defaults(fn=cmd_recover)

    p = sub.add_parser("analyze", help="analyse a recorded trial: IK, GRF, inverse dynamics, KAM/KEM (or check files)",
                       description="Full chain on a marker trial: inverse kinematics on the subject-scaled model, ground "
                                   "reaction forces (measured plates with --grf, else estimated from kinematics alone), "
                                   "inverse dynamics, knee adduction/extension moments in %%BW*ht. Writes CSVs with a "
                                   "time_s column and unit-suffixed columns to --output; references (--ik-ref, --grf-ref) "
                                   "are only used for validation figures.\n"
                                   "example: exo analyze --trc ../shared/data/GC5_PS/trc/PS_ngait_og_ss1.trc "
                                   "--markerset ../shared/data/GC5_PS/model/GC5.osim --mass-kg 75 --height-m 1.8 --side left "
                                   "--grf ../shared/data/GC5_PS/grf/PS_ngait_og_ss1_kinetics.mot --output runs/ps1\n"
                                   "Without --trc/--c3d: read and check the given trial files (.trc/.mot/.sto/.c3d).")
    p.add_argument("trials", nargs="*", help="trial files to read and check (without --trc/--c3d)")
    p.add_argument("--trc", help="marker trajectories (.trc, mm or m, lab frame y up)")
    p.add_argument("--c3d", help="marker trajectories (.c3d)")
    p.add_argument("--markerset", help="OpenSim model or marker file placing the trial's markers on the model's bodies "
                                       "(e.g. GC5.osim, DM_markers.xml)")
    p.add_argument("--mass-kg", type=float, help="subject mass, kg")
    p.add_argument("--height-m", type=float, help="subject height, m")
    p.add_argument("--side", choices=["left", "right"], help="limb of interest (knee moments)")
    p.add_argument("--model", default="myoleg", help="musculoskeletal model (default: %(default)s)")
    p.add_argument("--grf", help="measured force plates (.mot/.sto): input to inverse dynamics")
    p.add_argument("--muscles", action="store_true",
                   help="also solve static optimisation (muscle activations, reserves) -> activations.csv")
    p.add_argument("--external-loads", help="OpenSim ExternalLoads XML naming the foot on each plate (else detected)")
    p.add_argument("--ik-ref", help="reference IK (.mot) for validation only")
    p.add_argument("--kcf-ref", help="reference knee contact force CSV (percent of the trial window; medial, lateral, "
                                     "total in N), e.g. the PS in-vivo eTibia files; needs --muscles")
    p.add_argument("--grf-ref", help="reference force plates for validation only")
    p.add_argument("--output", default="runs/analyze", help="output folder for the CSVs (default: %(default)s)")
    p.add_argument("--json", help="write the summary and validation figures to this JSON file")
    p.add_argument("--json-stdout", action="store_true", help="file-check mode: JSON on stdout")
    p.add_argument("--video", help="a video of one walking person: pose (tracked), world grounding, landmark IK, then "
                   "the kinematics-only chain (GRF, ID, KAM/KEM); landmarks.csv beside the usual CSVs")
    p.add_argument("--bbox", help="with --video: the person to follow, x0,y0,x1,y1 in pixels of the first frame")
    p.add_argument("--mask", help="with --video: a mask image of the person (its box becomes the prompt)")
    p.add_argument("--describe", help="with --video: the subject in words, e.g. 'tall male, 1.85 m, 90 kg' "
                   "(height and mass; --height-m/--mass-kg override)")
    p.add_argument("--calibration", help="with --video: camera calibration (.toml or Qualisys .qca.txt)")
    p.add_argument("--hfov-deg", type=float, default=60.0, help="with --video and no calibration: assumed horizontal "
                   "field of view (default: %(default)s)")
    p.add_argument("--frames", help="with --video: START:STOP frame range")
    p.set_defaults(fn=cmd_analyze)

    p = sub.add_parser("validate", help="the analysis chain on every shared trial, figures beside their anchors",
                       description="Run analyze on every trial in ../shared/data and write one JSON file of validation "
                                   "figures (joint angles vs lab IK, GRF vs plates, knee moments vs ID with plates).\n"
                                   "example: exo validate --json validation.json")
    p.add_argument("--json", default=os.environ.get("VALIDATION_JSON", "validation.json"),
                   help="output JSON (default: $VALIDATION_JSON or validation.json)")
    p.add_argument("--data", help="shared data folder (default: ../shared/data or $EXO_SHARED_DATA)")
    p.add_argument("--output", help="also write each trial's CSVs under this folder")
    p.set_defaults(fn=cmd_validate)

    p = sub.add_parser("config", help="validate configuration files",
                       description="Validate the device, subject and calibration files; print them with defaults.\n"
                                   "example: exo config --config launch/config/device.yaml")
    _add_config_args(p)
    p.set_defaults(fn=cmd_config)

    p = sub.add_parser("can", help="AK-series MIT frames: encode values, decode candump lines",
                       description="Turn values into MIT-mode frame bytes and candump lines into values, for a given "
                                   "motor model and firmware (their ranges differ).\n"
                                   "examples: exo can encode --model AK80-9 --firmware V2 --id 1 --torque 2.5\n"
                                   "          exo can decode --model AK80-9 --firmware V2 '000#01800080080019' '001#FFFFFFFFFFFFFFFC'")
    can_sub = p.add_subparsers(dest="can_command", metavar="<encode|decode>", required=True)
    pe = can_sub.add_parser("encode", help="values -> frame (candump -L form)",
                            description="Encode one MIT command (output-shaft units: rad, rad/s, N*m/rad, N*m*s/rad, N*m) "
                                        "or a special frame. Values outside the table are clamped and reported.\n"
                                        "example: exo can encode --model AK80-9 --firmware V2 --id 1 --kp 5 --position 0.3")
    pe.add_argument("--model", default="AK80-9")
    pe.add_argument("--firmware", default="V2")
    pe.add_argument("--id", type=lambda x: int(x, 0), default=1, help="motor CAN id (default: %(default)s)")
    pe.add_argument("--position", type=float, default=0.0, help="rad")
    pe.add_argument("--velocity", type=float, default=0.0, help="rad/s")
    pe.add_argument("--kp", type=float, default=0.0, help="N*m/rad")
    pe.add_argument("--kd", type=float, default=0.0, help="N*m*s/rad")
    pe.add_argument("--torque", type=float, default=0.0, help="feed-forward torque, N*m")
    pe.add_argument("--special", choices=["enter", "exit", "zero"], help="a special frame instead of a command")
    pe.add_argument("--json", action="store_true")
    pe.set_defaults(fn=cmd_can_encode)
    pd = can_sub.add_parser("decode", help="candump lines -> values",
                            description="Decode candump lines ('001#...' or 'can0  001   [8]  ..'). A frame on the master "
                                        "id (default 0) or of reply length is read as a drive reply, others as host commands.\n"
                                        "example: exo can decode --model AK10-9 --firmware V2 '000#018000800800190'")
    pd.add_argument("frames", nargs="+", help="candump lines")
    pd.add_argument("--model", default="AK80-9")
    pd.add_argument("--firmware", default="V2")
    pd.add_argument("--master-id", type=lambda x: int(x, 0), default=0, help="host id replies are sent to (default: 0)")
    pd.add_argument("--kind", choices=["auto", "reply", "command"], default="auto")
    pd.add_argument("--json", action="store_true")
    pd.set_defaults(fn=cmd_can_decode)

    p = sub.add_parser("doctor", help="check this machine for what the runtime needs",
                       description="Check real-time priority, locked memory, CAN interfaces and bitrate, ONNX Runtime "
                                   "providers, GPU, installed models and data; say what is missing and how to fix it.\n"
                                   "example: exo doctor")
    p.add_argument("--json", action="store_true", help="JSON output")
    p.set_defaults(fn=cmd_doctor)
    _register_command_modules(sub)
    return parser


def _register_command_modules(sub) -> None:
    """Add the subcommands defined in ``runtime/cli/commands/*.py``.

    Each module there exposes ``register(subparsers) -> None`` and imports its heavy
    dependencies inside the command function, so ``exo --help`` stays fast and works
    without the optional extras installed.
    """
    import importlib
    import pkgutil

    import runtime.cli.commands as commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        importlib.import_module(f"runtime.cli.commands.{info.name}").register(sub)


def main(argv: list[str] | None = None) -> int:
    from runtime.core.config import ConfigError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "fn", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.fn(args)
    except ConfigError as exc:
        print(f"configuration rejected:\n{exc}", file=sys.stderr)
        return EXIT_USAGE
    except (FileNotFoundError, FileExistsError, LookupError) as exc:
        print(f"exo {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ValueError as exc:          # bad input named by the code that found it: field and value
        print(f"exo {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
