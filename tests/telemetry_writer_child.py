"""Child process for tests/test_telemetry.py: logs telemetry at 500 Hz until signalled.

Usage: ``python tests/telemetry_writer_child.py OUT_DIR`` (cwd = repository root).

Prints to stdout (line-buffered):
  ``ready``                      once the log is open and the loop starts;
  ``progress <t_ns> <count>``    every 0.1 s: log time (ns, time.time_ns()) of the last
                                 accepted record and how many records were accepted so far;
  ``closed <written> <dropped>`` after the SIGTERM handler has closed the log.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from runtime.telemetry import schema as telemetry_schema
from runtime.telemetry.log import TelemetryLog

RATE_HZ = 500.0
JOINTS = ["hip_l", "hip_r", "knee_l", "knee_r"]


def timing_msg(rec: tuple) -> object:
    """(t_ns, cycle, scheduled_ns, start_ns, end_ns) -> CycleTiming."""
    t_ns, cycle, scheduled_ns, start_ns, end_ns = rec
    return telemetry_schema.make(
        "exo_runtime/msg/CycleTiming",
        stamp=t_ns,
        loop_name="torque",
        cycle=cycle,
        scheduled_ns=scheduled_ns,
        start_ns=start_ns,
        end_ns=end_ns,
        lateness_s=(start_ns - scheduled_ns) * 1e-9,
        duration_s=(end_ns - start_ns) * 1e-9,
        missed_total=0,
        stage_names=["read", "control", "send"],
        stage_durations_s=[1e-5, 2e-5, 3e-5],
    )


def torque_msg(rec: tuple) -> object:
    """(t_ns, torque) -> TorqueCommand."""
    t_ns, torque = rec
    return telemetry_schema.make(
        "exo_runtime/msg/TorqueCommand",
        stamp=t_ns,
        joint_names=JOINTS,
        requested_torque_nm=[torque] * len(JOINTS),
        commanded_torque_nm=[torque] * len(JOINTS),
        command_age_s=0.002,
        fade_gain=1.0,
        state="active",
        stale=False,
    )


def main() -> None:
    out_dir = Path(sys.argv[1])
    log = TelemetryLog(out_dir, chunk_period_s=0.25)
    log.register("/exo/cycle_timing", "exo_runtime/msg/CycleTiming", timing_msg)
    log.register("/exo/torque_command", "exo_runtime/msg/TorqueCommand", torque_msg)
    log.open()

    def on_sigterm(signum: int, frame: object) -> None:
        log.close()
        # os.write, not print: the handler may interrupt a print() of the main loop (even
        # between its text and its newline, hence the leading newline).
        os.write(1, f"\nclosed {log.written} {log.dropped}\n".encode())
        os._exit(0)

    signal.signal(signal.SIGTERM, on_sigterm)
    print("ready", flush=True)

    period_ns = int(1e9 / RATE_HZ)
    accepted = 0
    last_t_ns = 0
    next_report = time.monotonic() + 0.1
    scheduled = time.monotonic_ns()
    cycle = 0
    while True:
        start = time.monotonic_ns()
        t_ns = time.time_ns()
        accepted += log.write("/exo/torque_command", t_ns, (t_ns, 0.01 * (cycle % 100)))
        accepted += log.write("/exo/cycle_timing", t_ns, (t_ns, cycle, scheduled, start, time.monotonic_ns()))
        last_t_ns = t_ns
        if time.monotonic() >= next_report:
            print(f"progress {last_t_ns} {accepted}", flush=True)
            next_report += 0.1
        cycle += 1
        scheduled += period_ns
        delay = (scheduled - time.monotonic_ns()) * 1e-9
        if delay > 0:
            time.sleep(delay)


if __name__ == "__main__":
    main()
