"""MyoLeg's muscle paths and operating lengths calibrated to the subject's OpenSim model.

Why: on ``GC5.osim`` (Rajagopal 2015 scaled to PS) the scaled MyoLeg's hip moment arms agree with OpenSim's
``computeMomentArm`` within 0.1 mm, but every muscle inserting on the tibia or patella has a knee flexion moment
arm shifted towards flexion: quadriceps 3.8-4.0 mm smaller extension arms (~10 %), hamstrings, sartorius and
gracilis 6.5-8.8 mm larger flexion arms (19-26 %), psoas' hip flexion arm 5.3 mm small (RMS over
:func:`models.muscles.subject_muscles.gait_poses`).  Minimising the sum of squared activations then asks for
more quadriceps force per N m of knee extension and lets the hamstrings balance it cheaply, which loads the knee.

What is fitted (no knee contact or implant data enters):

1. **Site offsets** (:func:`fit_site_offsets`): for each calibrated muscle, one offset ``(dx, dy, dz)`` (m, in the
   body's frame) added to all its path sites on the *distal* bodies of the knee (tibia and patella; sagittal
   ``dx, dy`` only for the one-joint vasti and biceps short head) or on the pelvis for psoas and iliacus (their
   pelvic-brim points), fitted by damped Gauss-Newton so that our coupled moment arms about the target coordinates
   (the knee flexion for knee crossers, plus the hip flexion and adduction for the two-joint ones so that those
   stay put; hip flexion and adduction for psoas and iliacus) match OpenSim's at the poses.  Finite-difference
   Jacobians on ``model.site_pos`` (a muscle's sites are its own in MyoLeg, so all muscles are perturbed at once).
2. **Operating lengths** (:func:`fit_length_ranges`): MuJoCo's normalised fibre length is affine in the actuator
   length (``(L - LT) / L0`` with ``L0``, ``LT`` from ``lengthrange`` and the operating ``range``); ``L0`` and ``LT``
   are fitted so that MuJoCo's isometric capacity ``F0 FL`` equals OpenSim's rigid-tendon one (F0 x force-length x
   cos pennation from the ``.osim``'s optimal fibre length, tendon slack length and pennation) at the poses.  This
   carries the subject model's ``l_opt`` and ``l_slack`` onto our paths, which are not OpenSim's.
3. **Force-length curves** (:func:`fit_curve_shape`): MyoLeg's curves are far wider than the ``.osim``'s Millard
   curves (``lmin`` 0-0.7, ``lmax`` 1.5-3.5: at 1.3 optimal lengths MyoLeg's soleus keeps 97 % of its force, OpenSim's
   75 %), so in terminal stance our gastrocnemii and soleus were 1.6-2.6 x stronger than the subject model's and
   the gastrocnemii took the plantarflexion moment from soleus; MuJoCo's ``lmin, lmax`` are fitted to OpenSim's active
   curve over 0.5-1.7 optimal lengths, the passive curve as set by ``passive`` in :func:`calibrate_to_opensim`.

All three edit a compiled ``mujoco.MjModel`` in place (``site_pos``, ``actuator_lengthrange``, the muscles'
``gainprm`` / ``biasprm`` 4, 5, 7): the static optimisation and
the contact step (:mod:`models.muscles.knee_contact`) read the paths from it, so the forces' lines of action move
with the moment arms.  :class:`SubjectCalibration` holds the result (JSON round trip) with the ``.osim`` hash.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import mujoco
import numpy as np

from models.muscles.subject_calibration import (  # noqa: F401  (re-exported: the artefact side)
    ARTIFACT_DIR,
    SubjectCalibration,
    _apply_muscle_parameters,
    _muscle_sites,
    _sha256,
    apply_calibration,
    calibration_path,
    calibration_targets,
    load_calibration,
)
from models.muscles.subject_muscles import (
    OpenSimMuscle,
    gait_poses,
    mujoco_geometry,
    opensim_force_length_curves,
    opensim_geometry,
    read_opensim_muscles,
)

__all__ = [
    "MAX_OFFSET_M",
    "SubjectCalibration",
    "apply_calibration",
    "calibrate_to_opensim",
    "calibration_targets",
    "fit_length_ranges",
    "fit_site_offsets",
]

#: largest site offset the fit may use (m); a muscle needing more is left at the bound and reported
MAX_OFFSET_M = 0.025
_FD_STEP_M = 1e-4


def _shift(m: mujoco.MjModel, sites: Mapping[str, list[int]], offsets: Mapping[str, np.ndarray],
           base: np.ndarray) -> None:
    m.site_pos[:] = base
    for name, ids in sites.items():
        m.site_pos[ids] += offsets[name]


def _arm_errors(m, targets, coord_names, poses, theirs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    names = list(targets)
    coords = sorted({c for _, cs in targets.values() for c in cs})
    ours, _ = mujoco_geometry(m, coord_names, poses, names, coords)
    return {n: np.concatenate([ours[:, i, coords.index(c)] - theirs[n][:, k]
                               for k, c in enumerate(targets[n][1])]) for i, n in enumerate(names)}


def fit_site_offsets(m: mujoco.MjModel, targets: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]],
                     coord_names: Sequence[str], poses: np.ndarray, theirs: Mapping[str, np.ndarray], *,
                     iterations: int = 6, damping: float = 1e-2) -> dict[str, np.ndarray]:
    """Offsets ``{muscle: (3,) m}`` of each muscle's distal sites that fit our moment arms to ``theirs[muscle]``
    (``(n_poses, len(target coordinates))``, OpenSim's, m/rad) at ``poses``; ``m.site_pos`` is left with them
    applied.  ``damping`` (m^2 of arm error per m^2 of offset, relative) keeps unobservable directions at 0."""
    base = m.site_pos.copy()
    sites = {n: _muscle_sites(m, n, bodies) for n, (bodies, _) in targets.items()}
    empty = [n for n, ids in sites.items() if not ids]
    if empty:
        raise ValueError(f"muscles {empty}: no path site on the bodies to calibrate")
    off = {n: np.zeros(3) for n in targets}
    axes = {n: (0, 1, 2) if len(cs) > 1 else (0, 1) for n, (_, cs) in targets.items()}
    _shift(m, sites, off, base)
    r0 = _arm_errors(m, targets, coord_names, poses, theirs)
    for _ in range(iterations):
        jac = {n: np.zeros((r0[n].size, 3)) for n in targets}
        for k in range(3):
            _shift(m, sites, {n: off[n] + _FD_STEP_M * np.eye(3)[k] for n in targets}, base)
            rk = _arm_errors(m, targets, coord_names, poses, theirs)
            for n in targets:
                if k in axes[n]:
                    jac[n][:, k] = (rk[n] - r0[n]) / _FD_STEP_M
        step = {}
        for n in targets:
            J = jac[n][:, axes[n]]
            lam = damping * max(float(np.trace(J.T @ J)) / len(axes[n]), 1e-12)
            step[n] = np.zeros(3)
            step[n][list(axes[n])] = np.linalg.solve(J.T @ J + lam * np.eye(len(axes[n])), -J.T @ r0[n])
        # backtracking per muscle: a step is kept only where it lowers that muscle's squared error
        for _half in range(4):
            trial = {n: np.clip(off[n] + step[n], -MAX_OFFSET_M, MAX_OFFSET_M) for n in targets}
            _shift(m, sites, trial, base)
            rt = _arm_errors(m, targets, coord_names, poses, theirs)
            worse = [n for n in targets if float(rt[n] @ rt[n]) > float(r0[n] @ r0[n])]
            for n in targets:
                if n not in worse:
                    off[n], r0[n] = trial[n], rt[n]
                    step[n] = np.zeros(3)
            if not worse:
                break
            for n in worse:
                step[n] = 0.5 * step[n]
    _shift(m, sites, off, base)
    return off


def fit_length_ranges(m: mujoco.MjModel, osim_muscles: Mapping[str, OpenSimMuscle], our_lengths: np.ndarray,
                      their_lengths: np.ndarray, names: Sequence[str]) -> dict[str, tuple[float, float]]:
    """``{muscle: lengthrange (m)}`` making MuJoCo's normalised fibre length ``(L - LT) / L0`` equal OpenSim's
    rigid-tendon one (:meth:`~models.muscles.subject_muscles.OpenSimMuscle.normalized_fiber_length`) in mean and
    mean slope over the poses (muscle-tendon lengths ``(n_poses, len(names))``, m).  Does not edit ``m``."""
    out = {}
    for j, n in enumerate(names):
        mu = osim_muscles[n]
        theirs, ours = their_lengths[:, j], our_lengths[:, j]
        target = mu.normalized_fiber_length(theirs)
        x = theirs - mu.tendon_slack_length_m
        if np.any(x <= 0):
            raise ValueError(f"muscle {n!r}: OpenSim fibre slack at these poses (l_MT - l_slack min "
                             f"{float(x.min()):.4f} m); no operating point to carry over")
        slope = float(np.mean(x / (target * mu.optimal_fiber_length_m ** 2)))   # d(l_norm) / d(l_MT), 1/m
        a = m.actuator(n).id
        r0, r1 = float(m.actuator_gainprm[a, 0]), float(m.actuator_gainprm[a, 1])
        L0 = 1.0 / slope
        LT = float(np.mean(ours)) - float(np.mean(target)) * L0
        out[n] = (LT + r0 * L0, LT + r1 * L0)
    return out


#: normalised fibre lengths over which MuJoCo's force-length curves are fitted to OpenSim's (walking: 0.5-1.6)
CURVE_FIT_LENGTHS = np.linspace(0.5, 1.7, 61)


def fit_curve_shape(active: np.ndarray, passive: np.ndarray,
                    norm_length: np.ndarray = CURVE_FIT_LENGTHS) -> tuple[float, float, float]:
    """MuJoCo muscle ``(lmin, lmax, fpmax)`` whose active and passive force-length curves
    (:func:`~models.muscles.subject_muscles.mujoco_force_length`, :func:`~models.muscles.subject_muscles
    .mujoco_passive_force_length`) fit OpenSim's (``active``, ``passive`` over F0 at ``norm_length``) by least
    squares."""
    from scipy.optimize import least_squares

    from models.muscles.subject_muscles import (
        mujoco_force_length,
        mujoco_passive_force_length,
    )

    def residual(p: np.ndarray) -> np.ndarray:
        return np.concatenate([mujoco_force_length(norm_length, p[0], p[1]) - active,
                               mujoco_passive_force_length(norm_length, p[1], p[2]) - passive])

    fit = least_squares(residual, (0.4, 1.8, 1.3), bounds=((0.0, 1.2, 0.05), (0.9, 4.0, 5.0)), diff_step=1e-4)
    return tuple(float(v) for v in fit.x)  # type: ignore[return-value]


def _rms(err: Mapping[str, np.ndarray], targets, n_poses: int) -> dict[str, dict[str, float]]:
    return {n: {c: float(np.sqrt(np.mean(e[k * n_poses:(k + 1) * n_poses] ** 2)))
                for k, c in enumerate(targets[n][1])} for n, e in err.items()}


def side_muscles(m: mujoco.MjModel, osim_path: str | Path, side: str) -> list[str]:
    """The muscles of ``side`` (``*_l`` / ``*_r``) that both ``m`` and the OpenSim model have."""
    from models.body.registry import is_muscle

    theirs = set(read_opensim_muscles(osim_path))
    mine = [m.actuator(i).name for i in np.flatnonzero(is_muscle(m))]
    return [n for n in mine if n.endswith(f"_{side[0]}") and n in theirs]


def calibrate_to_opensim(m: mujoco.MjModel, osim_path: str | Path, side: str, *, n_poses: int = 64,
                         seed: int = 0, lengths: bool = True, curves: bool = True,
                         passive: bool = False) -> SubjectCalibration:
    """Fit and apply (in place) to ``m`` the site offsets of every knee crossing muscle and psoas / iliacus of
    ``side``; with ``lengths`` the operating lengths and with ``curves`` the force-length curves of every muscle of
    ``side`` both models have; all against the OpenSim model ``osim_path`` over
    :func:`~models.muscles.subject_muscles.gait_poses` (``n_poses``, ``seed``).  ``passive`` False (default): the
    fitted muscles carry no passive fibre force, as the muscle forces of OpenSim's static optimisation (activation
    x the rigid-tendon active capacity; the lab's SO ``force / activation`` equals ``calcInextensibleTendon
    ActiveFiberForce`` of the same frame, e.g. soleus 4166 vs 4208 N at 52 % of PS ss1): with a rigid tendon the
    fibre length of the loaded plantarflexors reaches 1.3 optimal lengths in terminal stance, where the passive
    curve would add 1.1-1.4 kN that a compliant tendon does not see.  True: MuJoCo's passive curve fitted to
    OpenSim's.  Needs ``opensim``."""
    targets = calibration_targets(side)
    coord_names, poses = gait_poses(side, n_poses, seed)
    names = list(targets)
    coords = sorted({c for _, cs in targets.values() for c in cs})
    arms, _ = opensim_geometry(osim_path, coord_names, poses, names, coords)
    theirs = {n: np.column_stack([arms[:, i, coords.index(c)] for c in targets[n][1]]) for i, n in enumerate(names)}
    before = _rms(_arm_errors(m, targets, coord_names, poses, theirs), targets, n_poses)
    off = fit_site_offsets(m, targets, coord_names, poses, theirs)
    after = _rms(_arm_errors(m, targets, coord_names, poses, theirs), targets, n_poses)
    cal = SubjectCalibration(_sha256(osim_path), side, {n: tuple(float(x) for x in o) for n, o in off.items()},
                             rms_before_m=before, rms_after_m=after)
    if lengths or curves:
        lm_names = side_muscles(m, osim_path, side)
        _, their_len = opensim_geometry(osim_path, coord_names, poses, lm_names, coords[:1])
        _, our_len = mujoco_geometry(m, coord_names, poses, lm_names, coords[:1])
        osm = read_opensim_muscles(osim_path, lm_names)
        if curves:
            shapes: dict[bytes, tuple[float, float, float]] = {}   # fitted once per distinct curve pair
            for n, (act, pas) in opensim_force_length_curves(osim_path, lm_names, CURVE_FIT_LENGTHS).items():
                key = np.round(np.concatenate([act, pas]), 9).tobytes()
                if key not in shapes:
                    shapes[key] = fit_curve_shape(act, pas)
                lmin, lmax, fpmax = shapes[key]
                cal.curves[n] = (lmin, lmax, fpmax if passive else 0.0)
        if lengths:
            cal.length_ranges_m = fit_length_ranges(m, osm, our_len, their_len, lm_names)
        _apply_muscle_parameters(m, cal)
    return cal


def _main(argv: Sequence[str] | None = None) -> int:
    """``python -m models.muscles.moment_arm_calibration --osim GC5.osim --side left [--mass-kg 75 --height-m 1.8]
    [--out DIR]``: fit on the subject-scaled MyoLeg (as ``exo analyze`` builds it) and write the artifact."""
    import argparse

    from models.trial_analysis import AnalyzeParams, subject_model

    ap = argparse.ArgumentParser(description=_main.__doc__)
    ap.add_argument("--osim", required=True)
    ap.add_argument("--side", default="left", choices=("left", "right"))
    ap.add_argument("--mass-kg", type=float, default=75.0)
    ap.add_argument("--height-m", type=float, default=1.80)
    ap.add_argument("--out", default=str(ARTIFACT_DIR))
    a = ap.parse_args(argv)
    m = subject_model(AnalyzeParams(a.mass_kg, a.height_m, a.side, subject_calibration=False), Path(a.osim), [])
    cal = calibrate_to_opensim(m, a.osim, a.side)
    print(cal.to_json(calibration_path(a.osim, a.side, a.out)))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
