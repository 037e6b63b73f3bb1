"""What a live run (``exo run``, ``exo demo``, ``exo hil``) writes and prints: a fresh output folder, the summary
after the run, and the opt-in Foxglove live view stage."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from runtime.cli.exit_codes import EXIT_FAILED, EXIT_OK


def fresh_out(path: str) -> Path:
    """``--out`` as a folder that holds no log yet (a second run never overwrites a first)."""
    out = Path(path)
    if (out / "telemetry").exists():
        raise FileExistsError(f"--out {out}: a log already exists there; choose another folder or delete it")
    return out


def print_run_result(result: Any, out: Path) -> int:
    """Summarise the finished run in ``out`` (latency table, plots, real-time settings); exit code of the run."""
    from runtime.report.summary import (
        format_text,
        load_series,
        summarize_log,
        write_plots,
    )

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


def live_view_stages(port: int | None, subject: Any, device: Any) -> list:
    """The opt-in Foxglove live view (loopback only) as a pipeline stage, with gait-retraining feedback."""
    if port is None:
        return []
    from runtime.telemetry.live_stage import LiveViewStage

    stage = LiveViewStage(port, [j.name for j in device.joints], side=subject.side if subject.side != "both" else "right")
    print(f"live view: ws://127.0.0.1:{stage.live.port} (Foxglove; layout launch/foxglove_layout.json)", flush=True)
    return [stage]
