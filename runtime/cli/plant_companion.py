"""The HIL plant process of ``exo demo`` and ``exo hil`` on a CAN device config: emulated AK drives of the
calibrated actuators on the simulated knee, in their own process."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

#: Repository root: the plant process runs ``python -m hil.plant_process`` from there.
_REPO = Path(__file__).resolve().parents[2]


def plant_companion(device: Any, subject: Any, calibration: Any, plant: Any, out: Path, duration_s: float,
                    trace: bool = False):
    """A ``CompanionProcess`` emulating every joint's actuator over the device's bus.

    ``plant``: a ``hil.scenario.PlantConfig`` (rate in Hz, seed, model rigid/cuff, real-time priority and CPUs, the
    leg's swing); ``duration_s``: the run's length in s (the plant lives 30 s longer, so it never ends before the
    run); ``trace``: write ``<out>/plant_trace.npz`` (per tick). Only direct-drive actuators (gear_ratio 1.0) are
    emulated. Real time: SCHED_FIFO at ``plant.priority`` or, when the device asks for SCHED_FIFO, 5 above the torque
    loop's (the emulated drive waits for no host process), on ``plant.cpus`` or the estimation CPUs (so it never
    preempts the torque loop inside a send), memory locked when the device locks its own (why: hil/plant_realtime.py)."""
    from runtime.control.companion import CompanionProcess

    out = Path(out).resolve()            # the plant runs from the repository root: its status path must be absolute
    by_name = {a.name: a for a in calibration.actuators}
    argv = [sys.executable, "-m", "hil.plant_process", "--interface", device.bus.interface,
            "--channel", device.bus.channel, "--port", str(device.bus.udp_port),
            "--duration", f"{duration_s + 30.0:g}", "--rate", f"{plant.rate_hz:g}",
            "--seed", str(plant.seed), "--status", str(out / "plant_status.json"),
            "--body-mass", f"{subject.mass_kg:g}", "--height", f"{subject.height_m:g}", "--control-stdin",
            "--plant", plant.model]
    if plant.cuff_model:
        argv += ["--cuff-model", str(Path(plant.cuff_model).resolve())]
    sw = plant.swing
    argv += ["--swing", f"{sw.cadence_hz:g},{sw.flexion_min_rad:g},{sw.flexion_max_rad:g}"]
    rt = device.realtime
    priority = plant.priority or (min(98, rt.torque_priority + 5) if rt.sched_fifo else None)
    if priority:
        argv += ["--priority", str(priority)]
    cpus = plant.cpus or rt.estimation_cpus
    if cpus:
        argv += ["--cpus", ",".join(str(c) for c in cpus)]
    if rt.lock_memory:
        argv += ["--lock-memory"]
    if trace:
        argv += ["--trace", str(out / "plant_trace.npz")]
    for j in device.joints:
        a = by_name[j.actuator]
        if a.gear_ratio != 1.0:
            raise ValueError(f"actuator {a.name}: gear_ratio = {a.gear_ratio}: the HIL plant emulates direct-drive "
                             "AK actuators on the knee (gear_ratio 1.0)")
        argv += ["--motor", f"{a.model}:{a.firmware}:{a.can_id}:{a.direction:+d}:{a.zero_offset_rad:g}"]
    return CompanionProcess("hil-plant", argv, status_path=out / "plant_status.json", cwd=_REPO)
