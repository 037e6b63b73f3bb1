"""The estimation-to-torque chain on Cyclone DDS without rclpy: the same topics as the ROS 2 nodes.

In one process, at ``rate_hz`` on absolute deadlines: time-based gait phase
(``controllers.phase_profile.CadencePhaseEstimator``) -> phase-profile assistance request ->
``SafetySupervisor`` (limits, slew, fade; the device file's parameters) -> commanded torque.
Publishes ``/exo/estimation/gait_phase``, ``/exo/assistance/request``, ``/exo/torque/command``,
``/exo/torque/wrench`` and ``/exo/safety/state`` (DDS ``rt/...``). The supervisor is activated
after ``warmup_s`` and deactivated ``fade_at_s`` into the run (if given), so a subscriber sees
torque flow and fade to zero. No drive is attached: this is the DDS transport, not a run.

``python -m runtime.dds.pipeline_publisher --seconds 3 [--rate-hz 100] [--fade-at 2]``
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

_PKG_CONFIG = Path(__file__).resolve().parents[2] / "launch" / "config"


def run(seconds: float, rate_hz: float = 100.0, fade_at_s: float | None = None, warmup_s: float = 0.2,
        device_path: str | Path | None = None, subject_path: str | Path | None = None,
        domain_id: int = 0) -> dict:
    """Publish for *seconds*; returns counts and the supervisor's final state."""
    from controllers.phase_profile import CadencePhaseEstimator, PhaseProfileController, PhaseProfileParams
    from controllers.safety import SafetyState, SafetySupervisor
    from runtime.core.config import load_device, load_subject
    from runtime.dds.transport import DdsTransport
    from runtime.ros2 import topics
    from runtime.wiring import safety_params_from

    if not (1.0 <= rate_hz <= 1000.0):
        raise ValueError(f"rate_hz = {rate_hz}: allowed 1..1000 Hz")
    if not seconds > 0:
        raise ValueError(f"seconds = {seconds}: must be > 0")
    device = load_device(device_path or _PKG_CONFIG / "device.yaml")
    subject = load_subject(subject_path or _PKG_CONFIG / "subject.yaml")
    names = [j.name for j in device.joints]
    sup = SafetySupervisor(safety_params_from(device))
    phase_est = CadencePhaseEstimator(1.5, time.monotonic_ns())
    ctrl = PhaseProfileController(PhaseProfileParams(), subject.assistance_level)
    requested = [0.0] * len(names)
    commanded = [0.0] * len(names)
    counts = {"cycles": 0}
    last_state = None
    with DdsTransport(domain_id) as dds:
        for t in (topics.GAIT_PHASE, topics.ASSISTANCE_REQUEST, topics.TORQUE_COMMAND, topics.TORQUE_WRENCH,
                  topics.SAFETY_STATE):
            dds.writer(t)
        period_ns = int(1e9 / rate_hz)
        t0 = time.monotonic_ns()
        next_ns = t0
        end_ns = t0 + int(seconds * 1e9)
        faded = False
        while True:
            now = time.monotonic_ns()
            if now >= end_ns:
                break
            wall = time.time_ns()
            if now - t0 >= warmup_s * 1e9 and sup.state is SafetyState.INACTIVE and not faded:
                sup.activate(now)
            if fade_at_s is not None and not faded and now - t0 >= fade_at_s * 1e9:
                sup.deactivate(now, "dds publisher: fade_at")
                faded = True
            phase = phase_est.phase(now)
            tau = ctrl.torque_nm(phase)
            for i in range(len(names)):
                requested[i] = tau
            sup.update(requested, now, commanded)
            dds.publish_float64(topics.GAIT_PHASE, phase)
            dds.publish_joint_state(topics.ASSISTANCE_REQUEST, wall, names, effort=requested)
            dds.publish_joint_state(topics.TORQUE_COMMAND, wall, names, effort=commanded)
            for name, c in zip(names, commanded):
                dds.publish_wrench(topics.TORQUE_WRENCH, wall, name, c)
            if sup.state is not last_state:
                last_state = sup.state
                dds.publish_string(topics.SAFETY_STATE, sup.state.value)
            counts["cycles"] += 1
            next_ns += period_ns
            delay = next_ns - time.monotonic_ns()
            if delay > 0:
                time.sleep(delay * 1e-9)
            else:
                next_ns = time.monotonic_ns()
    return {"cycles": counts["cycles"], "final_state": sup.state.value, "commanded_nm": list(commanded),
            "rclpy_loaded": "rclpy" in sys.modules and sys.modules["rclpy"] is not None}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m runtime.dds.pipeline_publisher", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, required=True)
    ap.add_argument("--rate-hz", type=float, default=100.0)
    ap.add_argument("--fade-at", type=float, default=None, help="s into the run to deactivate (fade to zero)")
    ap.add_argument("--warmup", type=float, default=0.2, help="s before activating the supervisor")
    ap.add_argument("--domain-id", type=int, default=0)
    args = ap.parse_args(argv)
    try:
        result = run(args.seconds, args.rate_hz, args.fade_at, args.warmup, domain_id=args.domain_id)
    except ValueError as exc:
        print(f"dds publisher: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
