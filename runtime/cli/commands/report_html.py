"""Looking at a run: ``exo report-html RUN`` (the self-contained HTML report) and ``exo live-view RUN`` (a recorded
run replayed into the Foxglove live view, with the gait-retraining feedback).

    exo report-html runs/try1                 write runs/try1/report.html, print its path and the headline figures
    exo report-html runs/try1 --out r.html    write the page elsewhere (PNGs in plots/ beside it)
    exo report-html runs/try1 --json          also print the summary (with the performance figures) as JSON
    exo report-html runs/try1 --trend runs/trend_dm   link the subject's exo trend plots
    exo live-view runs/try1 --port 8765       serve on 127.0.0.1:8765, replay at real time; open Foxglove with
                                              launch/foxglove_layout.json and connect to ws://127.0.0.1:8765

Exit codes: 0 done, 2 bad input (no run or log at the path, a non-.html --out, a bad port/speed/baseline).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from runtime.cli.arguments import add_command
from runtime.cli.exit_codes import EXIT_OK, EXIT_USAGE


def _cmd(args: argparse.Namespace) -> int:
    run = Path(args.run)
    if not run.exists():
        print(f"exo report-html: run = {str(run)!r}: no such run folder, rosbag2 folder or .mcap file", file=sys.stderr)
        return EXIT_USAGE
    if args.out is not None and Path(args.out).suffix.lower() != ".html":
        print(f"exo report-html: --out = {args.out!r}: must end in .html", file=sys.stderr)
        return EXIT_USAGE
    from runtime.report.html import build_html, run_dir_of

    try:
        out = Path(args.out) if args.out else run_dir_of(run) / "report.html"
        doc, pngs, summary = build_html(run, out.parent / "plots", trend_dir=args.trend)
    except FileNotFoundError as exc:
        print(f"exo report-html: run = {str(run)!r}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    tmp = out.with_suffix(".html.tmp")
    tmp.write_text(doc, encoding="utf-8")
    tmp.replace(out)
    if args.json:
        summary["html"] = str(out)
        summary["plots"] = [str(p) for p in pngs]
        print(json.dumps(summary, indent=2, default=str))
        return EXIT_OK
    perf = summary["performance"]
    e = perf["end_to_end_s"]
    print(f"report: {out} ({out.stat().st_size / 1024:.0f} KiB, {len(pngs)} plots in {out.parent / 'plots'})")
    if e["count"]:
        print(f"end to end, capture -> CAN write: p50 {e['p50'] * 1e3:.2f} ms, p99 {e['p99'] * 1e3:.2f} ms over "
              f"{e['count']} frames; {perf['frames_over_budget']} over the {perf['budget_s'] * 1e3:.1f} ms budget; "
              f"estimation misses {perf['missed_deadlines']}")
    print(f"faults latched: {len(summary['faults'])}")
    return EXIT_OK


def _live(args: argparse.Namespace) -> int:
    run = Path(args.run)
    if not run.exists():
        print(f"exo live-view: run = {str(run)!r}: no such run folder, rosbag2 folder or .mcap file", file=sys.stderr)
        return EXIT_USAGE
    from runtime.report.gait_retraining import GaitRetraining
    from runtime.telemetry.live_view import LiveView, recorded_events, replay

    try:
        live = LiveView(port=args.port)
        gait = GaitRetraining(segmentation=args.segmentation, baseline_strides=args.baseline_strides,
                              baseline_kam=args.baseline_kam, live=live)
        if args.speed < 0:
            raise ValueError(f"--speed = {args.speed!r}: must be >= 0 (0: as fast as possible)")
        events = recorded_events(run)
    except (ValueError, FileNotFoundError) as exc:
        print(f"exo live-view: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        live.start()
    except RuntimeError as exc:
        print(f"exo live-view: --port = {args.port}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    with live:
        print(f"live view on ws://127.0.0.1:{live.port} (Foxglove: open connection, then import "
              f"launch/foxglove_layout.json); replaying {len(events)} records at {args.speed:g}x; Ctrl-C stops",
              flush=True)
        try:
            while True:
                replay(events, live, speed=args.speed, gait=gait, side=args.side)
                if not args.loop:
                    break
        except KeyboardInterrupt:
            pass
        time.sleep(0.2)
        for fb in gait.strides:
            change = "" if fb.change_pct is None else f" {fb.change_pct:+.1f} %"
            print(f"stride {fb.stride}: peak KAM {fb.peak_kam:.2f} %BW*ht{change} {fb.category}")
        print("live view: " + ", ".join(f"{k} {v}" for k, v in live.stats().items()))
    return EXIT_OK


def register(subparsers) -> None:
    """Add ``report-html`` and ``live-view`` to the ``exo`` subcommands."""
    p = add_command(
        subparsers, "report-html", help="write the run's self-contained HTML report (plots embedded, PNGs beside it)",
        description="Write <run>/report.html: run metadata, per-stage and end-to-end latency against the 16.7 ms "
                    "frame budget, joint angles, GRF/CoP, KAM/KEM, activations and synergies, knee contact force, "
                    "commanded vs delivered torque, faults and their timeline. Topics the run did not record are "
                    "named as such. No script, no external URL.",
        examples=["exo report-html runs/try1"])
    p.add_argument("run", help="run folder (with telemetry/ and summary.json), rosbag2 folder or .mcap file")
    p.add_argument("--out", help="page path (default: <run>/report.html); PNGs go to plots/ beside it")
    p.add_argument("--json", action="store_true", help="print the summary with the performance figures as JSON")
    p.add_argument("--trend", metavar="DIR", help="link this subject's clinical trend plots (the folder written by "
                   "exo trend --out DIR)")
    p.set_defaults(fn=_cmd)

    p = add_command(
        subparsers, "live-view", help="replay a recorded run into the Foxglove live view (127.0.0.1) with gait-retraining feedback",
        description="Serve the live-view channels (angles, KAM/KEM, KCF, torque, faults, per-stride peak KAM against "
                    "the walker's baseline) on 127.0.0.1 with foxglove-sdk's WebSocket server and replay a recorded "
                    "run (or an 'exo analyze' log) into them. Layout: launch/foxglove_layout.json. For a viewer, "
                    "replay at real time (--speed 1, the default) on a fixed port, e.g. --port 8765.",
        examples=["exo live-view runs/try1 --port 0 --speed 0 --baseline-strides 5"])
    p.add_argument("run", help="run folder, rosbag2 folder or .mcap file")
    p.add_argument("--port", type=int, default=8765, help="TCP port on 127.0.0.1 (default: %(default)s; 0: any free)")
    p.add_argument("--speed", type=float, default=1.0, help="replay speed, x real time (0: as fast as possible)")
    p.add_argument("--loop", action="store_true", help="replay again and again until Ctrl-C")
    p.add_argument("--side", choices=["r", "l"], default="r", help="knee fed to the gait-retraining feedback")
    p.add_argument("--segmentation", choices=["kam", "heel_strike"], default="kam",
                   help="stride segmentation: KAM waveform or heel strikes from the vertical GRF (default: kam)")
    p.add_argument("--baseline-strides", type=int, default=5, help="strides forming the baseline (default: 5)")
    p.add_argument("--baseline-kam", type=float, help="stored baseline peak KAM in %%BW*ht instead of the first strides")
    p.set_defaults(fn=_live)
