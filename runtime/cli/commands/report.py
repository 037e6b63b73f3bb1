"""``exo report``: summarise a run's log (latency table, jitter, misses, faults), PNG plots, ``--json``."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from runtime.cli.arguments import add_command
from runtime.cli.exit_codes import EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from runtime.report.summary import (
        format_text,
        load_series,
        summarize_log,
        write_plots,
    )

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


def register(subparsers: Any) -> None:
    """Add ``report``."""
    p = add_command(
        subparsers, "report", help="summarise a run's log (latency, jitter, misses, faults) and plot it",
        description="Summarise a log written by 'run' or 'hil' (a run folder, its telemetry folder or the .mcap "
                    "file). Truncated logs are read up to the last complete chunk.",
        examples=["exo report runs/try1 --json"])
    p.add_argument("log", help="run folder, rosbag2 folder or .mcap file")
    p.add_argument("--json", action="store_true", help="machine-readable figures on stdout")
    p.add_argument("--plots", help="folder for the PNG plots (default: <log>/plots)")
    p.add_argument("--no-plots", action="store_true", help="do not write plots")
    p.add_argument("--html", action="store_true", help="also write <run>/report.html (self-contained, PNGs in plots/)")
    p.set_defaults(fn=cmd_report)
