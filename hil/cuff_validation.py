"""HIL validation of the soft-tissue compensator: desired versus delivered knee torque through a cuff.

The rig (:class:`hil.ak_emulator.HilRig`: an emulated AK80-9 in MIT mode, frame for frame, on a python-can
``virtual`` bus) drives :class:`hil.cuff_plant.CuffKneePlant` (seated knee, flexcomp tissue, exo link).
The host side runs what the device runs, in the same order, in **simulated time** (the full flex steps in
milliseconds, slower than the 1 kHz real-time plant):

* 60 Hz estimation: gait phase from the knee angle (:class:`controllers.gait_phase.GaitPhaseEstimator`)
  and the assistance strategy (:mod:`controllers.assistance`, limited by its ``CommandLimiter``);
* 500 Hz torque loop: the device's own cycle, :class:`controllers.torque_cycle.TorqueCycle` (as
  :mod:`runtime.control.torque_loop` and the ROS 2 nodes run it): linear interpolation from the previous to
  the latest command over one estimation period, staleness from capture, the joint envelope checks, the
  tissue compensator (optional), the safety supervisor (torque and slew limits); then an MIT frame with
  Kp = Kd = 0 and the torque as feed-forward; motor angle and rate come back in the drive's (quantised)
  replies, the knee angle and rate from a shank sensor (the plant's values);
* 1 kHz plant: the drive's torque on the exo link, the cuff's contact torque on the leg.

Figures, after ``discard_s``: RMSE and Pearson r of delivered versus desired torque (the desired being the
interpolated command entering the torque loop), the same for delivered versus motor torque (the rigid
assumption says they are equal), and the energy absorbed by the tissue per stride
``sum(tau_delivered * (w_exo - w_knee)) dt / strides`` (J).
"""
from __future__ import annotations

import math
import uuid
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from controllers.assistance import AssistanceInput, AssistanceParameters, make_strategy
from controllers.gait_phase import GaitPhaseEstimator
from controllers.safety import JointLimits, SafetyParams
from controllers.tissue_compensator import CompensatorParams, TissueCompensator, TissueSurrogate
from controllers.torque_cycle import TorqueCycle, TorqueCycleParams
from models.tissue.soft_tissue import CuffTissueParams, pressure_cell_edges, pressure_map, pressure_nodes

from .knee_plant import KneePlantParams


@dataclass(frozen=True)
class CuffScenario:
    """One validation run (SI units). ``levels``: ``[[t_s, level], ...]`` clinician level changes (the
    dynamic load changes)."""

    duration_s: float = 12.0
    discard_s: float = 3.0
    cadence_hz: float = 1.0
    flexion_min_rad: float = 0.3
    flexion_max_rad: float = 1.3
    strategy: str = "phase_profile"
    levels: tuple[tuple[float, float], ...] = ((0.0, 0.6), (5.0, 1.0), (9.0, 0.4))
    peak_nm_per_kg: float = 0.2
    phase_peak: float = 0.12
    phase_width: float = 0.06
    moment_fraction: float = 0.3
    ramp_in_s: float = 1.0
    torque_limit_nm: float = 18.0
    slew_limit_nm_per_s: float = 300.0
    estimation_rate_hz: float = 60.0
    command_rate_hz: float = 500.0
    plant_rate_hz: float = 1000.0
    feedback_gain: float = 0.0
    body_mass_kg: float = 75.0
    height_m: float = 1.80

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name in ("strategy", "levels"):
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"cuff scenario: {f.name} = {v!r}: must be a finite number >= 0")
        if not 0 <= self.discard_s < self.duration_s:
            raise ValueError(f"cuff scenario: discard_s = {self.discard_s!r}: allowed 0 <= discard_s < duration_s "
                             f"= {self.duration_s}")
        if abs(self.plant_rate_hz / self.command_rate_hz - round(self.plant_rate_hz / self.command_rate_hz)) > 1e-9:
            raise ValueError(f"cuff scenario: plant_rate_hz = {self.plant_rate_hz} must be a multiple of "
                             f"command_rate_hz = {self.command_rate_hz}")
        lv = []
        for i, item in enumerate(self.levels):
            try:
                t, level = (float(item[0]), float(item[1]))
            except (TypeError, ValueError, IndexError):
                raise ValueError(f"cuff scenario: levels[{i}] = {item!r}: expected [t_s, level]") from None
            if not (0.0 <= level <= 1.0) or not t >= 0:
                raise ValueError(f"cuff scenario: levels[{i}] = {item!r}: t_s >= 0 and 0 <= level <= 1")
            lv.append((t, level))
        if not lv:
            raise ValueError("cuff scenario: levels: need at least one [t_s, level]")
        object.__setattr__(self, "levels", tuple(sorted(lv)))
        AssistanceParameters(strategy=self.strategy, level=lv[0][1], body_mass_kg=self.body_mass_kg,  # validates
                             moment_fraction=self.moment_fraction, ramp_in_s=self.ramp_in_s,
                             torque_limit_nm=self.torque_limit_nm, slew_limit_nm_per_s=self.slew_limit_nm_per_s,
                             peak_nm_per_kg=self.peak_nm_per_kg, phase_peak=self.phase_peak,
                             phase_width=self.phase_width)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str = "scenario") -> "CuffScenario":
        if not isinstance(data, Mapping):
            raise ValueError(f"{source}: top level must be a mapping, got {type(data).__name__}")
        allowed = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ValueError(f"{source}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")
        kw = dict(data)
        if "levels" in kw:
            if not isinstance(kw["levels"], (list, tuple)):
                raise ValueError(f"{source}: levels = {kw['levels']!r}: expected a list of [t_s, level]")
            kw["levels"] = tuple(tuple(x) if isinstance(x, (list, tuple)) else x for x in kw["levels"])
        try:
            return cls(**kw)
        except ValueError as e:
            raise ValueError(f"{source}: {e}") from None

    @classmethod
    def from_yaml(cls, path: str | Path) -> "CuffScenario":
        import yaml
        p = Path(path)
        try:
            data = yaml.safe_load(p.read_text())
        except OSError as e:
            raise ValueError(f"{p}: cannot read ({e.strerror or e})") from None
        except yaml.YAMLError as e:
            raise ValueError(f"{p}: not valid YAML ({e})") from None
        return cls.from_mapping(data or {}, source=p.name)

    def level_at(self, t_s: float) -> float:
        level = self.levels[0][1]
        for t, lv in self.levels:
            if t_s >= t:
                level = lv
        return level


def _metrics(desired: np.ndarray, delivered: np.ndarray, motor: np.ndarray, power: np.ndarray, dt: float,
             strides: float) -> dict[str, float]:
    e = delivered - desired
    er = delivered - motor

    def corr(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.corrcoef(a, b)[0, 1]) if np.std(a) > 0 and np.std(b) > 0 else math.nan

    return {"rmse_nm": float(np.sqrt(np.mean(e ** 2))), "max_abs_error_nm": float(np.max(np.abs(e))),
            "r_delivered_vs_desired": corr(desired, delivered),
            "rmse_delivered_vs_motor_nm": float(np.sqrt(np.mean(er ** 2))),
            "r_delivered_vs_motor": corr(motor, delivered),
            "desired_rms_nm": float(np.sqrt(np.mean(desired ** 2))),
            "energy_absorbed_j_per_stride": float(np.sum(power) * dt / strides) if strides > 0 else math.nan,
            "strides": strides}


KNEE_SOURCES = ("sensor", "estimate", "joint")


def run_cuff_hil(scenario: CuffScenario, tissue: CuffTissueParams, surrogate: TissueSurrogate | None,
                 compensator: CompensatorParams | None = None, *, plant_factory: Any = None,
                 knee_source: str = "sensor") -> dict[str, Any]:
    """One run; ``surrogate`` None: no compensation (the motor is commanded the desired torque).

    ``plant_factory(knee_params, initial_flexion_rad)``: the cuff plant (default the flexcomp
    :class:`hil.cuff_plant.CuffKneePlant` on ``tissue``). ``knee_source``: what the compensator gets as the leg's
    knee angle: ``sensor`` (a shank sensor: the plant's values each cycle), ``estimate`` (the knee angle carried by
    the 60 Hz command, interpolated by the torque cycle) or ``joint`` (none: the motor encoder stands in).

    Returns ``{"metrics": ..., "trace": {...}, "pressure": {...}, "faults": [...]}``.
    """
    import can

    from firmware_bridge.ak_mit import ENTER_MOTOR_MODE, decode_reply, encode_command, safe_stop_command
    from firmware_bridge.bus import open_bus
    from firmware_bridge.motor_tables import limits_for

    from .ak_emulator import EmulatedAkDrive, HilRig
    from .cuff_plant import CuffKneePlant

    sc = scenario
    dt = 1.0 / sc.plant_rate_hz
    if abs(tissue.timestep_s - dt) > 1e-12:
        tissue = replace(tissue, timestep_s=dt, contact_timeconst_s=max(tissue.contact_timeconst_s, 2 * dt))
    knee = KneePlantParams(body_mass_kg=sc.body_mass_kg, height_m=sc.height_m, timestep_s=dt,
                           cadence_hz=sc.cadence_hz, flexion_min_rad=sc.flexion_min_rad,
                           flexion_max_rad=sc.flexion_max_rad)
    if knee_source not in KNEE_SOURCES:
        raise ValueError(f"knee_source = {knee_source!r}: allowed {', '.join(KNEE_SOURCES)}")
    mid = 0.5 * (sc.flexion_min_rad + sc.flexion_max_rad)
    plant = (CuffKneePlant(knee, tissue, initial_flexion_rad=mid) if plant_factory is None
             else plant_factory(knee, mid))
    lim = limits_for("AK80-9", "V2")
    ch = f"cuff-{uuid.uuid4().hex}"
    host = open_bus("virtual", ch, receive_own_messages=False)
    rig_bus = open_bus("virtual", ch, receive_own_messages=False)
    drive = EmulatedAkDrive(lim, 1, zero_silence_s=0.0)
    rig = HilRig(rig_bus, [(drive, 1, 0.0)], plant, rate_hz=sc.plant_rate_hz)
    limits = SafetyParams(joints=(JointLimits("knee", sc.torque_limit_nm, sc.slew_limit_nm_per_s, -0.2, 2.6, 25.0),))
    gait = GaitPhaseEstimator()
    params = AssistanceParameters(strategy=sc.strategy, level=sc.level_at(0.0), body_mass_kg=sc.body_mass_kg,
                                  moment_fraction=sc.moment_fraction, ramp_in_s=sc.ramp_in_s,
                                  torque_limit_nm=sc.torque_limit_nm, slew_limit_nm_per_s=sc.slew_limit_nm_per_s,
                                  peak_nm_per_kg=sc.peak_nm_per_kg, phase_peak=sc.phase_peak,
                                  phase_width=sc.phase_width)
    strategy = make_strategy(params)
    comp = TissueCompensator(surrogate, compensator) if surrogate is not None else None
    ticks_per_cmd = int(round(sc.plant_rate_hz / sc.command_rate_hz))
    est_period = 1.0 / sc.estimation_rate_hz
    cmd_dt = 1.0 / sc.command_rate_hz
    cycle = TorqueCycle(TorqueCycleParams(safety=limits, estimation_period_s=est_period, interpolation="linear",
                                          cycle_period_s=cmd_dt), comp)
    sup = cycle.supervisor
    n_ticks = int(round(sc.duration_s * sc.plant_rate_hz))
    desired_per_tick = np.zeros(n_ticks)
    cmd_per_tick = np.zeros(n_ticks)
    exo_meas = (plant.flexion_rad, 0.0)
    t_ns = 0
    next_est = 0.0
    n_est = 0
    best_peak = -1.0
    pmap: dict[str, Any] = {}
    try:
        for data in (safe_stop_command(lim), ENTER_MOTOR_MODE):
            host.send(can.Message(arbitration_id=1, data=data, is_extended_id=False))
        rig.service(t_ns)
        while host.recv(0.0) is not None:
            pass
        sup.activate(t_ns)
        desired = motor = 0.0
        for k in range(n_ticks):
            t = k * dt
            t_ns = int(round(t * 1e9))
            if t >= next_est - 1e-12:                      # 60 Hz estimation
                next_est += est_period
                g = gait.update(t, plant.knee_flexion_rad)
                strategy.set_level(sc.level_at(t))
                out = strategy.step(AssistanceInput(t, est_period, phase=g.phase, phase_valid=g.valid,
                                                    stance=g.stance, knee_moment_nm=plant.voluntary_torque_nm))
                n_est += 1                                 # captured and published now (simulated time)
                cycle.new_command(n_est, t_ns, t_ns, (out.torque_nm,),
                                  math.nan if knee_source == "joint" else plant.knee_flexion_rad)
            if k % ticks_per_cmd == 0:                     # 500 Hz torque loop: the device's cycle
                cycle.interpolate(t_ns)
                cycle.check_age(t_ns)
                cycle.observe_joint(0, exo_meas[0], exo_meas[1], t_ns, source="drive.knee")
                if knee_source == "sensor":
                    cycle.knee_sensor(plant.knee_flexion_rad, plant.knee_velocity_rad_s)
                motor = cycle.step(t_ns)[0]
                desired = cycle.requested[0]
                host.send(can.Message(arbitration_id=1, data=encode_command(lim, 0.0, 0.0, 0.0, 0.0, motor).data,
                                      is_extended_id=False))
            rig.service(t_ns)
            while (m := host.recv(0.0)) is not None:
                if not m.is_error_frame and m.arbitration_id == 0:
                    r = decode_reply(lim, m.data, 1, arbitration_id=m.arbitration_id)
                    exo_meas = (r.position_rad, r.velocity_rad_s)
            rig.step(dt)
            desired_per_tick[k] = desired
            cmd_per_tick[k] = motor
            if hasattr(plant, "ids") and abs(plant.delivered_torque_nm) > best_peak and t >= sc.discard_s:
                best_peak = abs(plant.delivered_torque_nm)
                pmap = {"t_s": t + dt, "delivered_nm": plant.delivered_torque_nm,
                        "map_pa": pressure_map(plant.model, plant.data, plant.ids, tissue),
                        "edges_m": {side: [pressure_cell_edges(n).tolist() for n in pressure_nodes(tissue)]
                                    for side in ("posterior", "anterior")}}
    finally:
        host.shutdown()
        rig_bus.shutdown()
    tr = plant.trace()
    keep = tr["t_s"] > sc.discard_s + 1e-12
    power = tr["delivered_nm"] * (tr["exo_rad_s"] - tr["knee_rad_s"])
    strides = (tr["t_s"][keep][-1] - tr["t_s"][keep][0] + dt) * sc.cadence_hz
    met = _metrics(desired_per_tick[keep], tr["delivered_nm"][keep], tr["motor_nm"][keep], power[keep], dt, strides)
    met["motor_command_rms_nm"] = float(np.sqrt(np.mean(cmd_per_tick[keep] ** 2)))
    met["peak_pressure_kpa"] = float(max(v.max() for v in pmap["map_pa"].values()) / 1e3) if pmap else math.nan
    trace = {**tr, "desired_nm": desired_per_tick, "command_nm": cmd_per_tick}
    faults = [f"{f.source}:{f.kind.value}" for f in sup.latched]
    return {"metrics": met, "trace": trace, "pressure": pmap, "faults": faults,
            "compensated": surrogate is not None}


def validate(scenario: CuffScenario, tissue: CuffTissueParams, surrogate: TissueSurrogate,
             compensator: CompensatorParams | None = None) -> dict[str, Any]:
    """The same scenario without and with compensation; figures side by side."""
    base = run_cuff_hil(scenario, tissue, None)
    comp = run_cuff_hil(scenario, tissue, surrogate, compensator)
    return {"scenario": {k: v for k, v in asdict(scenario).items()},
            "tissue": tissue.summary(), "surrogate": surrogate.to_dict(),
            "compensator": asdict(compensator or CompensatorParams()),
            "uncompensated": base["metrics"], "compensated": comp["metrics"],
            "faults": {"uncompensated": base["faults"], "compensated": comp["faults"]},
            "runs": {"uncompensated": base, "compensated": comp}}
