"""The HIL scenario's fault schedule as the last stage of the estimation pipeline.

``hil.scenario`` describes *what* is injected *when* (validated at load); this stage applies it on
the run's own clock: pipeline stalls (pure Python, holding the GIL), NaN commands, stopped commands,
e-stop and fault reset through the session, and drive/bus faults sent to the plant process.
"""
from __future__ import annotations

import math
import time

from hil.scenario import InjectedFault
from runtime.pipeline.frame import PipelineFrame


class FaultInjectionStage:
    """Runs last in the pipeline and applies the scenario's faults at their times."""

    name = "fault_injection"

    def __init__(self, faults: list[InjectedFault], rate_hz: float, session) -> None:
        self.faults = sorted(faults, key=lambda f: f.at_s)
        self.rate_hz = rate_hz
        self.session = session
        self._stop_until = -1
        self._plant_clear: list[tuple[float, int | None]] = []   # (time s, motor id)
        self._t0_ns: int | None = None
        self.applied: list[str] = []

    def step(self, frame: PipelineFrame) -> None:
        if self._t0_ns is None:
            self._t0_ns = frame.capture_ns
        t = (frame.capture_ns - self._t0_ns) * 1e-9          # run time, s (not frame count: frames can be skipped)
        while self.faults and self.faults[0].at_s <= t:
            f = self.faults.pop(0)
            self.applied.append(f"{t:.3f}s {f.kind}")
            if f.kind == "pipeline_stall":
                end = time.perf_counter() + f.duration_s
                x = 0
                while time.perf_counter() < end:   # pure Python: holds the GIL
                    x += 1
            elif f.kind == "nan_command":
                for i in range(len(frame.assistance_nm)):
                    frame.assistance_nm[i] = math.nan
            elif f.kind == "stop_commands":
                self._stop_until = t + f.duration_s
            elif f.kind == "estop":
                self.session.request_estop()
            elif f.kind == "fault_reset":
                self.session.request_fault_reset()
            elif f.kind == "plant":
                if not self.session.plant_control({"faults": f.plant, "motor_id": f.motor_id}):
                    self.applied[-1] += " (no plant process: not applied)"
                if f.duration_s > 0:
                    self._plant_clear.append((t + f.duration_s, f.motor_id))
        for item in [c for c in self._plant_clear if c[0] <= t]:
            self._plant_clear.remove(item)
            self.session.plant_control({"faults": None, "motor_id": item[1]})
            self.applied.append(f"{t:.3f}s plant faults cleared")
        if t < self._stop_until:
            frame.publish = False
