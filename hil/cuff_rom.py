"""A reduced-order cuff plant fast enough for the 1 kHz real-time HIL plant process.

The full flexcomp cuff (:class:`hil.cuff_plant.CuffKneePlant`) steps in about 2.5 ms here (its coarse 3 x 3 x 2 mesh
in 0.5 ms), too slow for a 1 ms tick that shares two cores with the estimation and torque processes. This module
fits a small model to flexcomp runs (in simulated time, offline) and steps it in pure Python (tens of us per tick).

Interface model (N*m, rad, s; ``d = q_exo - q_knee`` the cuff-bone deflection, ``dd`` its rate, ``s = d - d_ref``)::

    tau_int = P(s) + c dd + k_m m                                 (linear beyond the fitted range of s)
    P(s)    = a0 + k1 s + kp max(s, 0)^2 - kn max(-s, 0)^2 + k3 s^3,   k1 > 0, kp, kn, k3 >= 0
    m'      = dd - m / tau_m                                      (a Maxwell branch: relaxation)

a smooth polynomial elastic backbone (stiffening, different each way, increasing by construction), a viscous element and one Maxwell (spring-dashpot in series) branch: a standard linear
solid with a nonlinear spring. Its structure differs from the compensator's surrogate
(:class:`controllers.tissue_compensator.TissueSurrogate`: piecewise-linear static curve + viscous damping, no
internal state), so the real-time check is not the surrogate tested against itself; it is also fitted to other
flexcomp runs (seated knee swinging under open-loop multi-sine and pulse torques, not the surrogate's bench cases).

Mechanics (as :class:`hil.cuff_plant.CuffKneePlant`): the exo link (inertia ``exo_inertia_kg_m2`` about the knee
axis, centre of mass on it) carries the motor torque and pushes on the leg through ``tau_int``; the leg is the
seated knee of :mod:`hil.knee_plant` whose "voluntary" torque is PD tracking plus gravity compensation, so gravity
cancels and the knee obeys ``I_k q_k'' = PD + tau_int - b q_k'`` with ``I_k`` read from the MuJoCo seated-knee
model (mass matrix, armature included). Semi-implicit Euler in ``substeps`` per tick.
"""
from __future__ import annotations

import math
from array import array
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .knee_plant import KneePlantParams, voluntary_target_rad

ROM_ARTIFACT_PATH = Path(__file__).resolve().parent / "artifacts" / "cuff_rom_v1.json"
ROM_ARTIFACT_VERSION = 1


@dataclass(frozen=True)
class CuffRomParams:
    """Fitted interface parameters (SI: N*m, rad, s) and the exo link's inertia (kg*m^2)."""

    d_ref_rad: float
    a0_nm: float
    k1_nm_per_rad: float
    kp_nm_per_rad2: float                        # stiffening for s > 0
    kn_nm_per_rad2: float                        # stiffening for s < 0
    k3_nm_per_rad3: float
    s_min_rad: float                             # fitted range of s = d - d_ref
    s_max_rad: float
    c_nm_s_per_rad: float
    k_m_nm_per_rad: float
    tau_m_s: float
    exo_inertia_kg_m2: float

    def __post_init__(self) -> None:
        for name in CuffRomParams.__dataclass_fields__:
            v = getattr(self, name)
            if isinstance(v, bool) or not (isinstance(v, (int, float)) and math.isfinite(v)):
                raise ValueError(f"CuffRomParams.{name} = {v!r}: must be finite")
        if not self.s_min_rad < self.s_max_rad:
            raise ValueError(f"CuffRomParams.s_min_rad = {self.s_min_rad!r} must be < s_max_rad = {self.s_max_rad!r}")
        if not self.k1_nm_per_rad > 0:
            raise ValueError(f"CuffRomParams.k1_nm_per_rad = {self.k1_nm_per_rad!r}: must be > 0 (an increasing "
                             "backbone)")
        for name in ("kp_nm_per_rad2", "kn_nm_per_rad2", "k3_nm_per_rad3", "c_nm_s_per_rad", "k_m_nm_per_rad"):
            if getattr(self, name) < 0:
                raise ValueError(f"CuffRomParams.{name} = {getattr(self, name)!r}: must be >= 0")
        if self.tau_m_s <= 0 or self.exo_inertia_kg_m2 <= 0:
            raise ValueError(f"CuffRomParams.tau_m_s = {self.tau_m_s!r}, exo_inertia_kg_m2 = "
                             f"{self.exo_inertia_kg_m2!r}: must be > 0")

    def stiffness(self, s: float) -> float:
        """dP/ds (N*m/rad), inside the fitted range; the end slopes outside it."""
        s = min(max(s, self.s_min_rad), self.s_max_rad)
        return (self.k1_nm_per_rad + 2.0 * (self.kp_nm_per_rad2 * max(s, 0.0) + self.kn_nm_per_rad2 * max(-s, 0.0))
                + 3.0 * self.k3_nm_per_rad3 * s * s)

    def backbone(self, d: float) -> float:
        """P(d - d_ref) (N*m), continued linearly beyond the fitted range."""
        s = d - self.d_ref_rad
        sc = min(max(s, self.s_min_rad), self.s_max_rad)
        sp, sn = max(sc, 0.0), max(-sc, 0.0)
        p = (self.a0_nm + sc * (self.k1_nm_per_rad + self.k3_nm_per_rad3 * sc * sc) + self.kp_nm_per_rad2 * sp * sp
             - self.kn_nm_per_rad2 * sn * sn)
        return p + (s - sc) * self.stiffness(sc)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def maxwell_state(dd: np.ndarray, dt_s: float, tau_m_s: float) -> np.ndarray:
    """``m`` of ``m' = dd - m / tau_m`` along a sampled rate (exact for ``dd`` held over each sample), rad."""
    e = math.exp(-dt_s / tau_m_s)
    g = tau_m_s * (1.0 - e)
    out = np.empty_like(dd)
    m = 0.0
    for i, x in enumerate(dd):
        m = m * e + g * float(x)
        out[i] = m
    return out


# ----------------------------------------------------------------------------- fit

def fit_cuff_rom(records: Sequence[Mapping[str, np.ndarray]], dt_s: float, exo_inertia_kg_m2: float,
                 tau_grid_s: Sequence[float] = tuple(np.geomspace(0.003, 1.0, 16))
                 ) -> tuple[CuffRomParams, dict[str, float]]:
    """Least squares of ``delivered_nm`` on the backbone, viscous and Maxwell terms (``tau_m`` by grid search).

    ``records``: flexcomp traces with ``exo_rad``, ``exo_rad_s``, ``knee_rad``, ``knee_rad_s``, ``delivered_nm``
    (one sample per ``dt_s``). Returns the parameters and the fit figures (RMSE N*m, R^2, samples)."""
    from scipy.optimize import lsq_linear

    if not records:
        raise ValueError("records: need at least one flexcomp trace")
    d_all, dd_all, y_all = [], [], []
    for i, r in enumerate(records):
        for key in ("exo_rad", "exo_rad_s", "knee_rad", "knee_rad_s", "delivered_nm"):
            if key not in r:
                raise ValueError(f"records[{i}]: missing {key!r}")
        d_all.append(np.asarray(r["exo_rad"], float) - np.asarray(r["knee_rad"], float))
        dd_all.append(np.asarray(r["exo_rad_s"], float) - np.asarray(r["knee_rad_s"], float))
        y_all.append(np.asarray(r["delivered_nm"], float))
    d, dd, y = (np.concatenate(x) for x in (d_all, dd_all, y_all))
    if not (np.all(np.isfinite(d)) and np.all(np.isfinite(dd)) and np.all(np.isfinite(y))):
        raise ValueError("records: non-finite samples")
    d_ref = float(np.median(d))
    s = d - d_ref
    if np.ptp(s) <= 0:
        raise ValueError("records: the deflection never changes; nothing to fit")
    best: tuple[float, Any, float] | None = None
    for tau in tau_grid_s:
        m = np.concatenate([maxwell_state(x, dt_s, float(tau)) for x in dd_all])
        A = np.c_[np.ones_like(s), s, np.maximum(s, 0.0) ** 2, -np.maximum(-s, 0.0) ** 2, s ** 3, dd, m]
        scale = np.maximum(np.abs(A).max(axis=0), 1e-12)
        lower = np.r_[-np.inf, 1.0 * scale[1], np.zeros(5)]       # k1 >= 1 N*m/rad, the rest >= 0
        sol = lsq_linear(A / scale, y, bounds=(lower, np.full(7, np.inf)), method="bvls")
        coef = sol.x / scale
        sse = float(np.sum((A @ coef - y) ** 2))
        if best is None or sse < best[0]:
            best = (sse, coef, float(tau))
    assert best is not None
    sse, coef, tau = best
    params = CuffRomParams(d_ref_rad=d_ref, a0_nm=float(coef[0]), k1_nm_per_rad=float(coef[1]),
                           kp_nm_per_rad2=max(0.0, float(coef[2])), kn_nm_per_rad2=max(0.0, float(coef[3])),
                           k3_nm_per_rad3=max(0.0, float(coef[4])),
                           s_min_rad=float(s.min()), s_max_rad=float(s.max()), c_nm_s_per_rad=max(0.0, float(coef[5])),
                           k_m_nm_per_rad=max(0.0, float(coef[6])), tau_m_s=tau, exo_inertia_kg_m2=float(exo_inertia_kg_m2))
    ss = float(np.sum((y - y.mean()) ** 2))
    return params, {"interface_rmse_nm": math.sqrt(sse / y.size), "interface_r2": 1.0 - sse / ss if ss > 0 else math.nan,
                    "samples": int(y.size)}


# ----------------------------------------------------------------------------- plant

class RomCuffKneePlant:
    """The seated knee with the reduced-order cuff; the interface of :class:`hil.cuff_plant.CuffKneePlant`
    (``flexion_rad``: motor side, ``knee_flexion_rad``: the leg, ``delivered_torque_nm``; ``step(torque, dt)``)."""

    def __init__(self, rom: CuffRomParams, params: KneePlantParams | None = None, initial_flexion_rad: float = 0.9,
                 substeps: int = 10, trace: bool = True) -> None:
        if not (isinstance(substeps, int) and 1 <= substeps <= 100):
            raise ValueError(f"substeps = {substeps!r}: allowed 1..100")
        self.rom = rom
        self.params = params or KneePlantParams()
        self.substeps = substeps
        self.knee_inertia_kg_m2 = knee_inertia_kg_m2(self.params)
        self.time_s = 0.0
        self._qk = self._qe = float(initial_flexion_rad)
        self._vk = self._ve = 0.0
        # start at the static balance: zero interface torque at zero deflection rate
        self._qe = self._qk + _deflection_at(rom, 0.0)
        self._m = 0.0
        self.exo_torque_nm = 0.0
        self.voluntary_torque_nm = 0.0
        self.delivered_torque_nm = self._interface()
        self._trace_on = trace
        self._tr = {k: array("d") for k in ("t_s", "knee_rad", "knee_rad_s", "exo_rad", "exo_rad_s", "motor_nm",
                                            "delivered_nm", "voluntary_nm")}

    @property
    def flexion_rad(self) -> float:
        """Motor-side (exo link) angle, rad: what the drive's encoder reports."""
        return self._qe

    @property
    def flexion_velocity_rad_s(self) -> float:
        return self._ve

    @property
    def knee_flexion_rad(self) -> float:
        return self._qk

    @property
    def knee_velocity_rad_s(self) -> float:
        return self._vk

    def voluntary_target_rad(self, t_s: float) -> float:
        return voluntary_target_rad(self.params, t_s)

    def _interface(self) -> float:
        r = self.rom
        return r.backbone(self._qe - self._qk) + r.c_nm_s_per_rad * (self._ve - self._vk) + r.k_m_nm_per_rad * self._m

    def step(self, exo_torque_nm: float, dt_s: float) -> None:
        """Advance ``dt_s`` in ``substeps`` semi-implicit Euler steps with the motor torque held (N*m)."""
        p, r = self.params, self.rom
        n = self.substeps
        h = dt_s / n
        e = math.exp(-h / r.tau_m_s)
        g = r.tau_m_s * (1.0 - e)
        ik, je = self.knee_inertia_kg_m2, r.exo_inertia_kg_m2
        kp, kd, b = p.voluntary_kp_nm_per_rad, p.voluntary_kd_nm_s_per_rad, p.joint_damping_nm_s_per_rad
        for _ in range(n):
            tau = self._interface()
            vol = kp * (voluntary_target_rad(p, self.time_s) - self._qk) - kd * self._vk
            self._vk += h * (vol + tau - b * self._vk) / ik
            self._ve += h * (exo_torque_nm - tau) / je
            self._qk += h * self._vk
            self._qe += h * self._ve
            self._m = self._m * e + g * (self._ve - self._vk)
            self.time_s += h
            self.voluntary_torque_nm = vol
        self.delivered_torque_nm = self._interface()
        self.exo_torque_nm = exo_torque_nm
        if self._trace_on:
            tr = self._tr
            for k, v in (("t_s", self.time_s), ("knee_rad", self._qk), ("knee_rad_s", self._vk),
                         ("exo_rad", self._qe), ("exo_rad_s", self._ve), ("motor_nm", exo_torque_nm),
                         ("delivered_nm", self.delivered_torque_nm), ("voluntary_nm", self.voluntary_torque_nm)):
                tr[k].append(float(v))

    def trace(self) -> dict[str, np.ndarray]:
        """Per tick: time (end of tick), angles and rates, motor, delivered and voluntary torques."""
        return {k: np.frombuffer(v, dtype=float).copy() for k, v in self._tr.items()}


def knee_inertia_kg_m2(params: KneePlantParams) -> float:
    """The seated knee's inertia about its axis (kg*m^2, armature included), from its MuJoCo model."""
    import mujoco

    from .knee_plant import _mjcf

    model = mujoco.MjModel.from_xml_string(_mjcf(params))
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    full = np.zeros((model.nv, model.nv))
    mujoco.mj_fullM(model, data, full)
    return float(full[0, 0])


def _deflection_at(rom: CuffRomParams, torque_nm: float) -> float:
    """Deflection (rad) where the backbone gives ``torque_nm`` (bisection; the backbone increases)."""
    lo, hi = rom.d_ref_rad + rom.s_min_rad - 0.05, rom.d_ref_rad + rom.s_max_rad + 0.05
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        if rom.backbone(mid) < torque_nm:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


# ----------------------------------------------------------------------------- flexcomp runs and the artefact

@dataclass(frozen=True)
class TorqueProfile:
    """Open-loop motor torque (N*m): ``offset + sum a sin(2 pi f t) + pulse`` with a Gaussian pulse of
    ``pulse_nm`` and width ``pulse_width_s`` (s, sd) every ``pulse_period_s``; the knee swings at ``cadence_hz``."""

    name: str
    cadence_hz: float
    offset_nm: float
    sines: tuple[tuple[float, float], ...] = ()      # (amplitude N*m, frequency Hz)
    pulse_nm: float = 0.0
    pulse_width_s: float = 0.05
    pulse_period_s: float = 1.0

    def torque(self, t_s: float) -> float:
        tau = self.offset_nm + sum(a * math.sin(2 * math.pi * f * t_s) for a, f in self.sines)
        if self.pulse_nm:
            ph = (t_s % self.pulse_period_s) - 0.5 * self.pulse_period_s
            tau += self.pulse_nm * math.exp(-0.5 * (ph / self.pulse_width_s) ** 2)
        return tau


#: fitting runs (multi-sine, pulses, a flexion offset) and the held-out run (gait-like extension bumps)
FIT_PROFILES: tuple[TorqueProfile, ...] = (
    TorqueProfile("multisine", 1.0, -6.0, ((5.0, 1.3), (2.0, 3.7), (1.0, 7.9))),
    TorqueProfile("pulses", 0.7, -1.0, ((1.0, 2.9),), pulse_nm=-11.0, pulse_width_s=0.06, pulse_period_s=0.8),
    TorqueProfile("flexion", 1.2, 2.0, ((3.0, 2.3), (1.0, 11.0))),
)
HELDOUT_PROFILE = TorqueProfile("gait_bumps", 1.0, 0.0, ((0.5, 5.3),), pulse_nm=-12.0, pulse_width_s=0.07,
                                pulse_period_s=1.0)


def _knee_for(profile: TorqueProfile, timestep_s: float) -> KneePlantParams:
    return KneePlantParams(timestep_s=timestep_s, cadence_hz=profile.cadence_hz, flexion_min_rad=0.3,
                           flexion_max_rad=1.3)


def run_open_loop(plant_factory: Callable[[KneePlantParams], Any], profile: TorqueProfile, seconds: float,
                  dt_s: float) -> dict[str, np.ndarray]:
    """Step a cuff plant (flexcomp or reduced) with ``profile``'s motor torque; its per-step trace."""
    plant = plant_factory(_knee_for(profile, dt_s))
    for k in range(int(round(seconds / dt_s))):
        plant.step(profile.torque(k * dt_s), dt_s)
    return plant.trace()


def compare(reference: Mapping[str, np.ndarray], model: Mapping[str, np.ndarray], discard_s: float) -> dict[str, float]:
    """Delivered torque of ``model`` against ``reference`` (same run), after ``discard_s``: RMSE, r, and the
    rigid assumption's RMSE (delivered = motor) on the reference for scale (N*m)."""
    keep = reference["t_s"] > discard_s
    a, b = reference["delivered_nm"][keep], model["delivered_nm"][keep]
    rigid = reference["motor_nm"][keep]
    return {"rmse_nm": float(np.sqrt(np.mean((a - b) ** 2))), "r": float(np.corrcoef(a, b)[0, 1]),
            "rmse_rigid_assumption_nm": float(np.sqrt(np.mean((a - rigid) ** 2))),
            "knee_rmse_rad": float(np.sqrt(np.mean((reference["knee_rad"][keep] - model["knee_rad"][keep]) ** 2))),
            "delivered_rms_nm": float(np.sqrt(np.mean(a ** 2)))}


def flexcomp_traces(tissue: Any = None, seconds: float = 4.0) -> dict[str, dict[str, np.ndarray]]:
    """Flexcomp (:class:`hil.cuff_plant.CuffKneePlant`) runs of :data:`FIT_PROFILES` and :data:`HELDOUT_PROFILE`,
    by profile name (simulated time; about 2.5 ms per 1 ms step here)."""
    from models.tissue.soft_tissue import CuffTissueParams

    from .cuff_plant import CuffKneePlant

    tissue = tissue or CuffTissueParams()
    flex = lambda kp: CuffKneePlant(kp, tissue, initial_flexion_rad=0.8)
    return {p.name: run_open_loop(flex, p, seconds, tissue.timestep_s) for p in (*FIT_PROFILES, HELDOUT_PROFILE)}


def fit_and_validate(traces: Mapping[str, Mapping[str, np.ndarray]], dt_s: float, exo_inertia_kg_m2: float,
                     discard_s: float = 0.5) -> tuple[CuffRomParams, dict[str, Any]]:
    """Fit on the :data:`FIT_PROFILES` traces; run the reduced plant on every profile and compare its delivered
    torque with flexcomp's (the held-out profile is the stated error)."""
    recs = [{k: v[traces[p.name]["t_s"] > discard_s] for k, v in traces[p.name].items()} for p in FIT_PROFILES]
    rom, fit = fit_cuff_rom(recs, dt_s, exo_inertia_kg_m2)
    seconds = float(traces[HELDOUT_PROFILE.name]["t_s"][-1])
    rom_plant = lambda kp: RomCuffKneePlant(rom, kp, initial_flexion_rad=0.8)
    runs = {p.name: compare(traces[p.name], run_open_loop(rom_plant, p, seconds, dt_s), discard_s)
            for p in (*FIT_PROFILES, HELDOUT_PROFILE)}
    return rom, {"fit": fit, "heldout_vs_flexcomp": runs[HELDOUT_PROFILE.name],
                 "fit_runs_vs_flexcomp": {p.name: runs[p.name] for p in FIT_PROFILES}, "discard_s": discard_s}


def build_rom(tissue: Any = None, seconds: float = 4.0, discard_s: float = 0.5) -> tuple[CuffRomParams, dict[str, Any]]:
    """Flexcomp runs -> fit -> the held-out error; the parameters and their provenance."""
    import time

    from models.tissue.soft_tissue import CuffTissueParams

    tissue = tissue or CuffTissueParams()
    t0 = time.perf_counter()
    traces = flexcomp_traces(tissue, seconds)
    flex_s = time.perf_counter() - t0
    rom, figures = fit_and_validate(traces, tissue.timestep_s, tissue.exo_inertia_kg_m2, discard_s)
    prov = {"method": "least squares of flexcomp delivered torque on a monotone polynomial backbone + viscous + one "
                      "Maxwell branch (tau_m by grid search), on seated-knee flexcomp runs under open-loop torques "
                      "(hil.cuff_rom.FIT_PROFILES); exo inertia from CuffTissueParams; error on the held-out profile",
            "tissue": tissue.summary(), "fit_profiles": [asdict(p) for p in FIT_PROFILES],
            "heldout_profile": asdict(HELDOUT_PROFILE), "seconds_per_run": seconds, **figures,
            "flexcomp_seconds": flex_s}
    return rom, prov


def save_rom(rom: CuffRomParams, provenance: Mapping[str, Any], path: str | Path = ROM_ARTIFACT_PATH) -> Path:
    """Write the versioned artefact (JSON)."""
    from models.io.artifact_file import write_versioned_artifact

    return write_versioned_artifact(path, "cuff_rom", ROM_ARTIFACT_VERSION, {"rom": rom.to_dict()}, provenance,
                                    "exo tissue fit-plant --out hil/artifacts/cuff_rom_v1.json")


def load_rom(path: str | Path = ROM_ARTIFACT_PATH) -> tuple[CuffRomParams, dict[str, Any]]:
    """The reduced-order cuff parameters and the whole artefact; ValueError naming the file when unusable."""
    from models.io.artifact_file import read_versioned_artifact

    fields, doc = read_versioned_artifact(path, "cuff_rom", ROM_ARTIFACT_VERSION, "cuff plant artefact", "rom",
                                          set(CuffRomParams.__dataclass_fields__), "exo tissue fit-plant")
    return CuffRomParams(**fields), doc
