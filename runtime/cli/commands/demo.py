"""``exo demo``: the main job on the embedded default: input -> estimation chain -> assistance -> safety -> CAN ->
emulated exoskeleton drive (HIL plant in its own process); ``--offline``: the same chain over the whole input."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from runtime.cli.arguments import add_command, positive_seconds
from runtime.cli.configs import add_config_args, default_config, load_configs
from runtime.cli.demo_inputs import DEMO_PROMPT_BBOX, DEMO_PROMPT_FRAME, DemoInput
from runtime.cli.exit_codes import EXIT_OK
from runtime.cli.run_output import fresh_out, live_view_stages, print_run_result


def cmd_demo(args: argparse.Namespace) -> int:
    """The main job on the embedded default: input -> estimation chain -> assistance -> safety -> CAN -> HIL plant."""
    from firmware_bridge.netns import ensure_private_netns
    from hil.scenario import PlantConfig
    from runtime.cli.demo_inputs import replay_input, video_input
    from runtime.cli.plant_companion import plant_companion
    from runtime.session import RunSession

    if args.offline and args.live_vision:
        raise ValueError("--offline: needs a recorded input: video landmarks computed ahead (not --live-vision) "
                         "or --replay")
    device, subject, calibration = load_configs(args)
    if device.bus.interface == "udp_multicast":
        ensure_private_netns("exo demo over udp_multicast")   # re-executes this command if needed
    out = fresh_out(args.out)
    out.mkdir(parents=True, exist_ok=True)
    metadata: dict = {}
    if args.replay:
        demo_input = replay_input(args.replay, device, subject, None)
        metadata["input"] = {"replay": args.replay}
    else:
        from runtime.vision.prompts import parse_bbox

        b = parse_bbox(args.bbox)
        prompt = {"bbox": [b.x0, b.y0, b.x1, b.y1], "frame": args.prompt_frame,
                  "interaction": [args.interaction] if args.interaction else []}
        demo_input = video_input(args.video, prompt, device, subject, out, args.live_vision, metadata)
    if args.offline:
        return demo_offline(demo_input, device, out, metadata)
    seconds = args.seconds if args.seconds is not None else (20.0 if args.replay else metadata["input_seconds"] + 1.0)
    companion = None
    if device.bus.interface in ("udp_multicast", "socketcan"):
        companion = plant_companion(device, subject, calibration, PlantConfig(), out, seconds)
        print(f"plant: emulated AK drives on {device.bus.interface} {device.bus.channel} (own process) on the "
              "simulated knee", flush=True)
    session = RunSession(device, subject, calibration, out, seconds, progress=lambda s: print(s, flush=True),
                         pipeline_factory=demo_input.factory, companion=companion,
                         extra_stages=live_view_stages(args.live_view, subject, device), metadata=metadata)
    result = session.run()
    code = print_run_result(result, out)
    from runtime.cli.demo_report import record_live_vision
    from runtime.report.html import write_html_report
    from runtime.report.summary import load_series, record_confidence

    series = load_series(out)
    record_confidence(out, series)          # summary.json: the confidence and the envelope flags of the run
    record_live_vision(out, series)         # summary.json: rate, drops, pose and capture -> CAN of the live vision
    print(f"html report: {write_html_report(out, series=series)}")
    return code


def demo_offline(demo_input: DemoInput, device: Any, out: Path, metadata: dict) -> int:
    """``exo demo --offline``: the same chain and controller over the whole input as fast as possible."""
    from runtime.estimation.offline import (
        progress_bar,
        run_pipeline_offline,
        write_offline,
    )

    if demo_input.offline is None:
        raise ValueError("--offline: needs a recorded input: video landmarks computed ahead (--replay-landmarks, "
                         "not --live-vision) or --replay")
    off = demo_input.offline
    rec = off.recording
    names = [j.name for j in device.joints]
    run = run_pipeline_offline(off.estimator, rec, off.make_assistance, len(names), progress_bar("offline"))
    files = write_offline(out, run, names, {"input": metadata.get("input"), "fallbacks": metadata.get("fallbacks")},
                          mass_kg=off.estimator.params.mass_kg)
    r = run["result"]
    print(f"offline: {run['frames']} frames ({rec.time_s[-1] - rec.time_s[0]:.1f} s of input at {rec.rate_hz:g} Hz) in "
          f"{run['seconds']:.2f} s = {run['fps']:.0f} frames/s ({run['fps'] / rec.rate_hz:.1f}x real time); "
          f"{int(r.valid.sum())} valid estimates; peak memory {run['peak_rss_mb']:.0f} MB")
    print("wrote " + ", ".join(str(f) for f in files))
    return EXIT_OK


def register(subparsers: Any) -> None:
    """Add ``demo``."""
    p = add_command(
        subparsers, "demo", help="the main job: input -> estimation chain -> assistance -> CAN -> HIL exoskeleton",
        description="Run the main job on the embedded default: a recorded input through the real-time estimation "
                    "chain (IK, GRF, inverse dynamics, KAM/KEM, static optimisation, synergies, knee contact force), "
                    "the assistance, the safety supervisor and the CAN bridge into the emulated exoskeleton drives in "
                    "their own process (udp_multicast in a private network namespace), paced at the device's "
                    "estimation rate; then the log and the report.\n\n"
                    "With no flag (plain 'exo demo', as 'make demo' runs it) the input is the sports2d demo video, "
                    "its landmarks computed ahead once by the vision front end and cached in runs/cache "
                    "(--replay-landmarks, named so in the report), for the video's length + 1 s; --live-vision runs "
                    "the front end live on each frame as it arrives instead. --replay takes a recorded marker trial "
                    "instead (cheap: the example); --offline runs the same chain and controller over the whole input without loops or CAN.",
        examples=["exo demo --replay PS_ss1 --seconds 2 --out runs/demo_replay"])
    add_config_args(p)
    p.set_defaults(config=default_config("device_hil.yaml"))
    p.add_argument("--seconds", type=positive_seconds, help="run length in s, > 0 (default: the video's length + 1 s; "
                   "20 s with --replay)")
    p.add_argument("--out", default="runs/demo", help="output folder (default: %(default)s)")
    p.add_argument("--video", help="video file as the camera (default: the sports2d demo video, obtained from "
                   "its wheel into the cache)")
    p.add_argument("--bbox", default=DEMO_PROMPT_BBOX, help="the person to follow: x0,y0,x1,y1 in pixels at "
                   "--prompt-frame (default: the walking woman of the sports2d demo, %(default)s)")
    p.add_argument("--prompt-frame", type=int, default=DEMO_PROMPT_FRAME, help="frame of --bbox (default: %(default)s)")
    p.add_argument("--interaction", help="interaction label that relaxes the tracker: 'close contact' or 'occlusion'")
    vision = p.add_mutually_exclusive_group()
    vision.add_argument("--live-vision", action="store_true", help="run the front end live: each frame released at "
                        "its capture time into the vision process (ONNX tracker, grounding, bounded anonymisation); "
                        "frames it cannot keep up with are dropped and counted with the reason; the report gives the "
                        "rate achieved, pose latency, drops and capture -> CAN with pose. Not the default on this "
                        "2-core CPU: it holds 29.5-30 frames/s of 30 (0-2 %% dropped), but capture -> CAN p99 is "
                        "56-83 ms and a command age over the 0.1 s staleness limit now and then latches the torque "
                        "loop's STALE fault")
    vision.add_argument("--replay-landmarks", action="store_true", help="(default) the same front end computed "
                        "ahead over every frame (cached in runs/cache) and its landmarks released on the video's "
                        "timeline (the report names this mode; its capture -> CAN latency excludes pose)")
    p.add_argument("--replay", metavar="TRIAL", help="instead of video: a recorded marker trial (e.g. PS_ss1)")
    p.add_argument("--offline", action="store_true", help="no loops, no CAN: the same estimation chain and "
                   "assistance controller over the whole input as fast as possible (progress bar; offline.csv and "
                   "offline.json with frames per second)")
    p.add_argument("--live-view", type=int, metavar="PORT", help="Foxglove live view on ws://127.0.0.1:PORT (inside "
                   "the run's private network namespace when the bus is udp_multicast: reachable from there only)")
    p.set_defaults(fn=cmd_demo)
