"""``exo``: the one command-line entry point of the runtime.

Subcommands (``exo <cmd> --help`` for each):

  run       run both loops with a device/subject/calibration config for N seconds, log to MCAP
  hil       run a hardware-in-the-loop scenario (faults injected at given times), log to MCAP
  report    summarise a run's log: latency table, jitter, misses, faults; PNG plots; --json
  recover   make a log truncated by a crash (SIGKILL, power loss) complete again
  analyze   read a lab trial (.trc/.mot/.sto/.c3d) and summarise it (units and headers checked)
  config    validate configuration files and print them with defaults filled in
  doctor    check this machine: real-time, CAN, ONNX Runtime, GPU, models, data
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

PKG_CONFIG = Path(__file__).resolve().parents[1] / "launch" / "config"
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _default(name: str) -> str:
    return str(PKG_CONFIG / name)


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=_default("device.yaml"), help="device configuration YAML (default: %(default)s)")
    p.add_argument("--subject", default=_default("subject.yaml"), help="subject profile YAML (default: %(default)s)")
    p.add_argument("--calibration", default=_default("calibration.yaml"),
                   help="actuator calibration YAML (default: %(default)s)")


def _load_configs(args):
    from runtime.config import check_consistency, load_calibration, load_device, load_subject

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
    from runtime.report import format_text, load_series, summarize_log, write_plots

    series = load_series(out)
    summary = summarize_log(out, series)
    print(format_text(summary))
    plots = write_plots(series, out / "plots")
    print(f"log: {out / 'telemetry'}   summary: {out / 'summary.json'}   plots: {', '.join(p.name for p in plots)}")
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
    session = RunSession(device, subject, calibration, out, args.seconds, progress=lambda s: print(s, flush=True))
    result = session.run()
    return _print_run_result(result, out)


def cmd_hil(args) -> int:
    from hil.scenario import FaultInjectionStage, load_scenario
    from runtime.config import check_consistency, load_calibration, load_device, load_subject
    from runtime.session import RunSession

    scenario, base = load_scenario(args.scenario)
    device = load_device(base / scenario.device)
    subject = load_subject(base / scenario.subject)
    calibration = load_calibration(base / scenario.calibration)
    check_consistency(device, calibration)
    out = _fresh_out(args.out)
    print(f"exo hil: scenario '{scenario.name}', {scenario.duration_s:g} s, {len(scenario.faults)} injected fault(s), "
          f"plant: {device.bus.interface} -> {out}")
    session = RunSession(device, subject, calibration, out, scenario.duration_s,
                         progress=lambda s: print(s, flush=True))
    injector = FaultInjectionStage(list(scenario.faults), device.estimation.rate_hz, session)
    session.extra_stages = [injector]
    result = session.run()
    print("injected: " + ("; ".join(injector.applied) or "none"))
    return _print_run_result(result, out)


def cmd_report(args) -> int:
    from runtime.report import format_text, load_series, summarize_log, write_plots

    series = load_series(args.log)
    summary = summarize_log(args.log, series)
    if not args.no_plots:
        target = Path(args.plots) if args.plots else (Path(args.log) / "plots" if Path(args.log).is_dir() else
                                                       Path(args.log).parent / "plots")
        summary["plots"] = [str(p) for p in write_plots(series, target)]
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        print(format_text(summary))
        if summary.get("plots"):
            print("plots: " + ", ".join(summary["plots"]))
    return EXIT_OK


def cmd_recover(args) -> int:
    from runtime.telemetry_read import is_complete, recover, resolve_log

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
    try:
        from models.lab_files import summarize
    except ImportError as exc:
        print(f"analyze: lab file readers unavailable: {exc}", file=sys.stderr)
        return EXIT_FAILED
    results = []
    failed = 0
    for path in args.trials:
        try:
            results.append(summarize(path))
        except (OSError, ValueError) as exc:
            failed += 1
            results.append({"path": str(path), "error": str(exc)})
    if args.json:
        print(json.dumps(results, indent=2, default=str))
    else:
        for r in results:
            if "error" in r:
                print(f"{r['path']}: ERROR {r['error']}")
                continue
            print(json.dumps(r, default=str))
        print("note: joint kinematics, ground reaction forces and moments from these trials arrive with the "
              "biomechanics core; this command reads and checks the files.")
    return EXIT_FAILED if failed else EXIT_OK


def cmd_config(args) -> int:
    device, subject, calibration = _load_configs(args)
    print(json.dumps({"device": device.model_dump(), "subject": subject.model_dump(),
                      "calibration": calibration.model_dump()}, indent=2))
    print("configuration valid", file=sys.stderr)
    return EXIT_OK


def cmd_doctor(args) -> int:
    from runtime.doctor import as_json, format_checks, run_checks

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
    p.set_defaults(fn=cmd_run)

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
    p.set_defaults(fn=cmd_report)

    p = sub.add_parser("recover", help="complete a log truncated by a crash",
                       description="Rewrite a log whose writer was killed (no MCAP summary) into a complete rosbag2 "
                                   "folder; the original file is kept as *.truncated.\nexample: exo recover runs/try1")
    p.add_argument("log", help="run folder, rosbag2 folder or .mcap file")
    p.add_argument("--force", action="store_true", help="rewrite even a complete file")
    p.set_defaults(fn=cmd_recover)

    p = sub.add_parser("analyze", help="read and check lab trials (.trc, .mot, .sto, .c3d)",
                       description="Read lab trial files, check their headers and units, and summarise them.\n"
                                   "example: exo analyze ../shared/data/GC5_PS/trc/PS_ngait_og_ss1.trc --json")
    p.add_argument("trials", nargs="+", help="trial files")
    p.add_argument("--json", action="store_true", help="JSON output")
    p.set_defaults(fn=cmd_analyze)

    p = sub.add_parser("config", help="validate configuration files",
                       description="Validate the device, subject and calibration files; print them with defaults.\n"
                                   "example: exo config --config launch/config/device.yaml")
    _add_config_args(p)
    p.set_defaults(fn=cmd_config)

    p = sub.add_parser("doctor", help="check this machine for what the runtime needs",
                       description="Check real-time priority, locked memory, CAN interfaces and bitrate, ONNX Runtime "
                                   "providers, GPU, installed models and data; say what is missing and how to fix it.\n"
                                   "example: exo doctor")
    p.add_argument("--json", action="store_true", help="JSON output")
    p.set_defaults(fn=cmd_doctor)
    return parser


def main(argv: list[str] | None = None) -> int:
    from runtime.config import ConfigError

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
    except (FileNotFoundError, FileExistsError) as exc:
        print(f"exo {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
