"""The subject's OpenSim muscles beside ours: parameters from the ``.osim`` and geometry at the same poses.

* :func:`read_opensim_muscles`: per muscle of an OpenSim model file, ``max_isometric_force`` (N),
  ``optimal_fiber_length`` and ``tendon_slack_length`` (m) and ``pennation_angle_at_optimal`` (rad), read with the
  standard library XML parser (no OpenSim install needed).
* :func:`opensim_geometry`: moment arms (m/rad, OpenSim's own ``Muscle.computeMomentArm``, which solves through the
  model's constraints, e.g. Rajagopal's coupled patella) and muscle-tendon lengths (m) at given poses; ``opensim``
  (the *bench* extra) is imported inside.
* :func:`mujoco_geometry`: the same on a MuJoCo model sharing the coordinate names (MyoLeg shares Rajagopal's):
  coupled moment arms (:meth:`models.body.registry.MusculoskeletalModel.coupled_muscle_moment_arms`, the OpenSim
  moment arm) and ``actuator_length``.
* :func:`gait_poses`: seeded random poses over the walking range of one leg's hip, knee and ankle (the poses the
  calibration in :mod:`models.muscles.moment_arm_calibration` is fitted on; no trial's poses).

Poses are ``(n, k)`` arrays of coordinate values (rad) named by ``coordinate_names``; every coordinate not named is
left at the model's default (OpenSim) or ``qpos0`` (MuJoCo), dependent coordinates follow their couplings.
"""
from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np

from models.body.registry import is_muscle

__all__ = [
    "GAIT_RANGE_RAD",
    "OpenSimMuscle",
    "gait_poses",
    "knee_crossing_muscles",
    "mujoco_force_length",
    "mujoco_geometry",
    "mujoco_passive_force_length",
    "opensim_force_length_curves",
    "opensim_geometry",
    "opensim_isometric_capacity",
    "read_opensim_muscles",
]

#: walking range of one leg's coordinates (rad) used for the calibration poses: hip flexion -20..40 deg, hip
#: adduction -10..10, hip rotation -10..10, knee 0..70, ankle -25..20 (Winter 2009, level walking envelopes)
GAIT_RANGE_RAD: dict[str, tuple[float, float]] = {
    "hip_flexion": (math.radians(-20.0), math.radians(40.0)),
    "hip_adduction": (math.radians(-10.0), math.radians(10.0)),
    "hip_rotation": (math.radians(-10.0), math.radians(10.0)),
    "knee_angle": (0.0, math.radians(70.0)),
    "ankle_angle": (math.radians(-25.0), math.radians(20.0)),
}


@dataclass(frozen=True)
class OpenSimMuscle:
    """One muscle of an OpenSim model: F0 (N), optimal fibre length and tendon slack length (m), pennation at the
    optimal fibre length (rad)."""

    name: str
    max_isometric_force_n: float
    optimal_fiber_length_m: float
    tendon_slack_length_m: float
    pennation_rad: float

    def normalized_fiber_length(self, mt_length_m: np.ndarray) -> np.ndarray:
        """Rigid-tendon fibre length over the optimal one for muscle-tendon lengths (m): constant fibre height
        ``l_opt sin(alpha_0)``, fibre along-tendon projection ``l_MT - l_slack`` (OpenSim's rigid-tendon rule)."""
        h = self.optimal_fiber_length_m * math.sin(self.pennation_rad)
        x = np.asarray(mt_length_m, dtype=float) - self.tendon_slack_length_m
        return np.sqrt(x * x + h * h) / self.optimal_fiber_length_m


def _positive(el: ET.Element, tag: str, name: str, path: Path, *, allow_zero: bool = False) -> float:
    text = el.findtext(tag)
    if text is None:
        raise ValueError(f"{path}: muscle {name!r} has no <{tag}>")
    v = float(text)
    if not (math.isfinite(v) and (v >= 0 if allow_zero else v > 0)):
        raise ValueError(f"{path}: muscle {name!r} {tag} = {text.strip()!r}: must be {'>= 0' if allow_zero else '> 0'}")
    return v


def read_opensim_muscles(osim_path: str | Path, names: Sequence[str] | None = None) -> dict[str, OpenSimMuscle]:
    """Every muscle (any element with ``<max_isometric_force>`` and ``<optimal_fiber_length>``) of an ``.osim``
    file, restricted to ``names`` when given (names absent from the file are skipped)."""
    path = Path(osim_path)
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        raise ValueError(f"osim_path = {str(path)!r}: cannot read an OpenSim model ({exc})") from exc
    keep = None if names is None else set(names)
    out: dict[str, OpenSimMuscle] = {}
    for el in root.iter():
        name = el.get("name")
        if name is None or el.find("max_isometric_force") is None or el.find("optimal_fiber_length") is None:
            continue
        if keep is not None and name not in keep:
            continue
        pen = el.findtext("pennation_angle_at_optimal")
        out[name] = OpenSimMuscle(name, _positive(el, "max_isometric_force", name, path),
                                  _positive(el, "optimal_fiber_length", name, path),
                                  _positive(el, "tendon_slack_length", name, path),
                                  float(pen) if pen is not None else 0.0)
    if not out:
        raise ValueError(f"osim_path = {str(path)!r}: no muscle with <max_isometric_force> and "
                         "<optimal_fiber_length> in it" + (f" among {sorted(keep)[:5]}..." if keep else ""))
    return out


def gait_poses(side: str, n: int = 64, seed: int = 0) -> tuple[tuple[str, ...], np.ndarray]:
    """``n`` poses of ``side``'s hip, knee and ankle drawn uniformly over :data:`GAIT_RANGE_RAD` (seeded):
    ``(coordinate names, (n, 5) values in rad)``."""
    if side not in ("left", "right"):
        raise ValueError(f"side = {side!r}: allowed 'left' or 'right'")
    if n < 1:
        raise ValueError(f"n = {n!r}: need at least one pose")
    rng = np.random.default_rng(seed)
    names = tuple(f"{c}_{side[0]}" for c in GAIT_RANGE_RAD)
    lo = np.array([r[0] for r in GAIT_RANGE_RAD.values()])
    hi = np.array([r[1] for r in GAIT_RANGE_RAD.values()])
    return names, lo + (hi - lo) * rng.random((n, lo.size))


def knee_crossing_muscles(side: str) -> tuple[str, ...]:
    """The muscles of ``side`` that cross the knee in Rajagopal's model and MyoLeg (same names)."""
    s = {"left": "l", "right": "r"}.get(side)
    if s is None:
        raise ValueError(f"side = {side!r}: allowed 'left' or 'right'")
    return tuple(f"{m}_{s}" for m in ("vasmed", "vaslat", "vasint", "recfem", "bflh", "bfsh", "semimem", "semiten",
                                      "gasmed", "gaslat", "sart", "grac", "tfl"))


def opensim_geometry(osim_path: str | Path, coordinate_names: Sequence[str], poses: np.ndarray,
                     muscles: Sequence[str], coordinates: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """OpenSim's moment arms ``(n, len(muscles), len(coordinates))`` (m/rad, ``computeMomentArm``) and
    muscle-tendon lengths ``(n, len(muscles))`` (m) at ``poses`` on the model file ``osim_path``.  The pose's
    coordinates are set without constraints, then the model is assembled (coupled coordinates follow)."""
    from models.io.opensim_import import import_opensim

    osim = import_opensim()
    model = osim.Model(str(osim_path))
    state = model.initSystem()
    cs = model.getCoordinateSet()
    ms = model.getMuscles()
    have_c = {cs.get(i).getName() for i in range(cs.getSize())}
    have_m = {ms.get(i).getName() for i in range(ms.getSize())}
    for what, wanted, have in (("coordinate", list(coordinate_names) + list(coordinates), have_c),
                               ("muscle", muscles, have_m)):
        missing = [n for n in wanted if n not in have]
        if missing:
            raise KeyError(f"{osim_path}: no {what} {missing}")
    poses = np.atleast_2d(np.asarray(poses, dtype=float))
    set_c = [cs.get(n) for n in coordinate_names]
    mus = [ms.get(n) for n in muscles]
    crd = [cs.get(n) for n in coordinates]
    arms = np.empty((poses.shape[0], len(mus), len(crd)))
    lengths = np.empty((poses.shape[0], len(mus)))
    for i, q in enumerate(poses):
        for c, v in zip(set_c, q):
            c.setValue(state, float(v), False)
        model.assemble(state)
        model.realizePosition(state)
        for a, m in enumerate(mus):
            lengths[i, a] = m.getLength(state)
            for b, c in enumerate(crd):
                arms[i, a, b] = m.computeMomentArm(state, c)
    return arms, lengths


def opensim_isometric_capacity(osim_path: str | Path, coordinate_names: Sequence[str], poses: np.ndarray,
                               muscles: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """OpenSim's fully activated isometric fibre force along the tendon with a rigid tendon, ``(n,
    len(muscles))`` (N; ``Muscle.calcInextensibleTendonActiveFiberForce(state, 1)`` at zero speeds: F0 x active
    force-length x cos(pennation), what OpenSim's static optimisation scales the activation by), and the
    muscle-tendon lengths (m), at ``poses``."""
    from models.io.opensim_import import import_opensim

    osim = import_opensim()
    model = osim.Model(str(osim_path))
    state = model.initSystem()
    cs, ms = model.getCoordinateSet(), model.getMuscles()
    set_c = [cs.get(n) for n in coordinate_names]
    mus = [ms.get(n) for n in muscles]
    poses = np.atleast_2d(np.asarray(poses, dtype=float))
    cap = np.empty((poses.shape[0], len(mus)))
    lengths = np.empty_like(cap)
    for i, q in enumerate(poses):
        for c, v in zip(set_c, q):
            c.setValue(state, float(v), False)
        model.assemble(state)
        state.updU().setToZero()
        model.realizeVelocity(state)
        for a, m in enumerate(mus):
            lengths[i, a] = m.getLength(state)
            cap[i, a] = m.calcInextensibleTendonActiveFiberForce(state, 1.0)
    return cap, lengths


def mujoco_force_length(norm_length: np.ndarray, lmin: float, lmax: float) -> np.ndarray:
    """MuJoCo's active force-length curve (``mju_muscleGainLength``): four quadratic pieces, 1 at the optimal
    length, 0 at ``lmin`` and ``lmax`` and outside."""
    L = np.asarray(norm_length, dtype=float)
    a, b = 0.5 * (lmin + 1.0), 0.5 * (1.0 + lmax)
    eps = 1e-12
    out = np.zeros_like(L)
    k = (L > lmin) & (L <= a)
    out[k] = 0.5 * ((L[k] - lmin) / max(a - lmin, eps)) ** 2
    k = (L > a) & (L <= 1.0)
    out[k] = 1.0 - 0.5 * ((1.0 - L[k]) / max(1.0 - a, eps)) ** 2
    k = (L > 1.0) & (L <= b)
    out[k] = 1.0 - 0.5 * ((L[k] - 1.0) / max(b - 1.0, eps)) ** 2
    k = (L > b) & (L < lmax)
    out[k] = 0.5 * ((lmax - L[k]) / max(lmax - b, eps)) ** 2
    return out


def mujoco_passive_force_length(norm_length: np.ndarray, lmax: float, fpmax: float) -> np.ndarray:
    """MuJoCo's passive force over F0 (``mju_muscleBias``): 0 up to the optimal length, quadratic to ``fpmax / 2``
    at ``b = (1 + lmax) / 2``, linear beyond."""
    L = np.asarray(norm_length, dtype=float)
    b = 0.5 * (1.0 + lmax)
    x = (L - 1.0) / max(b - 1.0, 1e-12)
    return np.where(L <= 1.0, 0.0, np.where(L <= b, fpmax * 0.5 * x * x, fpmax * (0.5 + (L - b) / max(b - 1.0, 1e-12))))


def opensim_force_length_curves(osim_path: str | Path, muscles: Sequence[str],
                                norm_length: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{muscle: (active, passive)}``: OpenSim's fibre force-length curves (over F0) at normalised fibre lengths
    (each ``Millard2012EquilibriumMuscle``'s ``ActiveForceLengthCurve`` / ``FiberForceLengthCurve``)."""
    from models.io.opensim_import import import_opensim

    osim = import_opensim()
    model = osim.Model(str(osim_path))
    model.initSystem()
    x = [float(v) for v in np.asarray(norm_length, dtype=float)]
    out = {}
    for n in muscles:
        mu = osim.Millard2012EquilibriumMuscle.safeDownCast(model.getMuscles().get(n))
        if mu is None:
            raise ValueError(f"{osim_path}: muscle {n!r} is not a Millard2012EquilibriumMuscle (curves not read)")
        a, p = mu.getActiveForceLengthCurve(), mu.getFiberForceLengthCurve()
        out[n] = (np.array([a.calcValue(v) for v in x]), np.array([p.calcValue(v) for v in x]))
    return out


def mujoco_geometry(model, coordinate_names: Sequence[str], poses: np.ndarray, muscles: Sequence[str],
                    coordinates: Sequence[str], *, base_qpos: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Our coupled moment arms ``(n, len(muscles), len(coordinates))`` (m/rad) and actuator lengths ``(n,
    len(muscles))`` (m) at ``poses`` on ``model`` (a ``mujoco.MjModel`` or a ``MusculoskeletalModel``), each pose's
    named hinge coordinates written into ``base_qpos`` (default ``qpos0``) and the couplings applied."""
    from models.muscles.static_optimization import _as_musculoskeletal

    mm = _as_musculoskeletal(model)
    m = mm.model
    d = mujoco.MjData(m)
    qadr = [int(m.jnt_qposadr[m.joint(n).id]) for n in coordinate_names]
    dof = [int(m.jnt_dofadr[m.joint(n).id]) for n in coordinates]
    muscle_ids = list(np.flatnonzero(is_muscle(m)))
    act = [m.actuator(n).id for n in muscles]
    rows = [muscle_ids.index(a) for a in act]
    poses = np.atleast_2d(np.asarray(poses, dtype=float))
    base = m.qpos0.copy() if base_qpos is None else np.asarray(base_qpos, dtype=float).copy()
    arms = np.empty((poses.shape[0], len(act), len(dof)))
    lengths = np.empty((poses.shape[0], len(act)))
    for i, q in enumerate(poses):
        d.qpos[:] = base
        d.qpos[qadr] = q
        mm.apply_joint_couplings(d.qpos)
        mujoco.mj_fwdPosition(m, d)
        arms[i] = mm.coupled_muscle_moment_arms(d)[np.ix_(rows, dof)]
        lengths[i] = d.actuator_length[act]
    return arms, lengths
