"""``exo run``: both loops for N seconds with a device/subject/calibration config, logged to MCAP."""
from __future__ import annotations

import argparse
from typing import Any

from runtime.cli.arguments import add_command, positive_seconds
from runtime.cli.configs import add_config_args, load_configs
from runtime.cli.run_output import fresh_out, live_view_stages, print_run_result


def cmd_run(args: argparse.Namespace) -> int:
    from runtime.cli.demo_inputs import replay_input
    from runtime.session import RunSession

    device, subject, calibration = load_configs(args)
    out = fresh_out(args.out)
    print(f"exo run: device '{device.device_name}', {len(device.joints)} joint(s), subject {subject.subject_id}, "
          f"{args.seconds:g} s -> {out}")
    if device.bus.interface == "sim":
        print("plant: simulated seated knee (MuJoCo, in the torque process); for the whole job (video -> torque over "
              "CAN into the emulated exoskeleton drive) use 'exo demo'")
    factory = replay_input(args.replay, device, subject, args.markerset).factory if args.replay else None
    session = RunSession(device, subject, calibration, out, args.seconds, progress=lambda s: print(s, flush=True),
                         pipeline_factory=factory, extra_stages=live_view_stages(args.live_view, subject, device))
    result = session.run()
    return print_run_result(result, out)


def register(subparsers: Any) -> None:
    """Add ``run``."""
    p = add_command(
        subparsers, "run", help="run both loops for N seconds and log to MCAP",
        description="Run the estimation loop (default 60 Hz) and the torque/safety loop (default 500 Hz, own process) "
                    "for --seconds, then fade to zero and write <out>/telemetry (rosbag2/MCAP), <out>/summary.json and "
                    "<out>/plots. Ctrl-C fades to zero; a second Ctrl-C zeroes at once.\n\n"
                    "With the packaged device.yaml the plant is the simulated seated knee inside the torque process; "
                    "the whole job (video -> estimation -> assistance -> CAN -> emulated exoskeleton drive) is "
                    "'exo demo'.",
        examples=["exo run --seconds 1 --out runs/try1"])
    add_config_args(p)
    p.add_argument("--seconds", type=positive_seconds, default=10.0, help="run length in s, > 0 (default: %(default)s)")
    p.add_argument("--out", default="runs/latest", help="output folder (must not hold a log yet; default: %(default)s)")
    p.add_argument("--replay", metavar="TRIAL", help="input: a recorded marker trial through the real estimation chain "
                   "(a shared trial name such as PS_ss1, or a .trc/.c3d path with --markerset); default: the "
                   "synthetic phase-based input")
    p.add_argument("--markerset", help="marker set (.osim or .xml) for a --replay file")
    p.add_argument("--live-view", type=int, metavar="PORT", help="stream angles, KAM, KCF, torque and gait-retraining "
                   "feedback to Foxglove on ws://127.0.0.1:PORT (loopback only)")
    p.set_defaults(fn=cmd_run)
