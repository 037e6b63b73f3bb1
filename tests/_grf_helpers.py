"""Test-only helpers of the ground reaction tests (moved out of ``models/grf``, which no production code needs):

* :func:`coordinates_from_lab_ik`: the lab's OpenSim IK (Rajagopal coordinates) mapped onto MyoLeg coordinates, the
  input of the validation against the GC5 force plates;
* :func:`estimate_ground_frame` / :class:`GroundFrame`: floor plane and walking direction of landmarks in an unknown
  frame (checked on rotated lab markers);
* :func:`cop_inside_support`: is each CoP inside its foot's support polygon.

World frame z up, SI units, feet ordered ``models.grf.contact.FEET``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import mujoco
import numpy as np

from models.grf.smoothing import ZeroLagLowPass, true_runs
from models.grf.body import rot_zxy
from models.grf.estimator import GroundReactionEstimator
from models.grf.model import as_mjmodel, load_myoleg
from models.grf.records import CoordinatesTrial, GroundReactionTrial

#: OpenSim lab axes (x fwd, y up, z right) -> z-up world (x fwd, y left, z up); same as models.io.axes.opensim_to_z_up.
_C_OS_TO_ZUP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])

_PELVIS_COLUMNS = ("pelvis_tilt", "pelvis_list", "pelvis_rotation", "pelvis_tx", "pelvis_ty", "pelvis_tz")
_LUMBAR_COLUMNS = ("lumbar_extension", "lumbar_bending", "lumbar_rotation")


def coordinates_from_lab_ik(table: Any, model: Any = None, *, pelvis_body: str = "pelvis") -> CoordinatesTrial:
    """Map an OpenSim IK table (Rajagopal coordinates, e.g. ``GC5_PS/ik/*_kinematics.mot`` read by
    ``models.io.storage.read_mot``) onto MyoLeg generalised coordinates.

    * Pelvis: OpenSim's ``ground_pelvis`` places the pelvis at ``(tx, ty, tz)`` with orientation
      ``Rz(tilt) Rx(list) Ry(rotation)`` in the lab (y up).  The MyoLeg root is a free joint whose child frame
      carries the pelvis at a fixed offset and rotation (read from the model: the pelvis faces -y when the root
      quaternion is the identity), so ``R_root = C R_pelvis R_pelvis_in_root^T`` and
      ``p_root = C p_pelvis - R_root o_pelvis_in_root`` with ``C`` the y-up -> z-up rotation (x fwd, y left, z up).
    * Other coordinates: by name (hips, ``knee_angle_*``, ankles, subtalar, mtp); degrees converted to radians when
      ``table.in_degrees``.  Coupled knee coordinates (translations, rotations, patella) follow MyoLeg's joint
      equality polynomials of ``knee_angle_*``; Rajagopal's ``knee_angle_*_beta`` is not used.
    * Lumbar angles (absent from MyoLeg) go to :attr:`CoordinatesTrial.lumbar_rad` when the table has them.
    """
    m = load_myoleg() if model is None else as_mjmodel(model)
    cols = tuple(table.columns)
    missing = [c for c in _PELVIS_COLUMNS if c not in cols]
    if missing:
        raise KeyError(f"{getattr(table, 'path', '') or 'table'}: IK table lacks pelvis columns {missing}")
    deg = bool(getattr(table, "in_degrees", True))
    ang = (math.pi / 180.0) if deg else 1.0
    col = table.column
    n = int(np.asarray(col("pelvis_tx")).shape[0])
    q = np.tile(np.asarray(m.qpos0, float), (n, 1))
    # pelvis pose relative to the root
    if m.njnt == 0 or int(m.jnt_type[0]) != int(mujoco.mjtJoint.mjJNT_FREE):
        raise ValueError("model has no free root joint")
    d = mujoco.MjData(m)
    d.qpos[:] = m.qpos0
    d.qpos[0:3] = 0.0
    d.qpos[3:7] = (1.0, 0.0, 0.0, 0.0)
    mujoco.mj_kinematics(m, d)
    pid = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, pelvis_body)
    if pid < 0:
        raise ValueError(f"pelvis_body {pelvis_body!r} not in the model")
    rp0 = d.xmat[pid].reshape(3, 3).copy()
    op0 = d.xpos[pid].copy()
    tilt, lst, rot = (np.asarray(col(c), float) * ang for c in _PELVIS_COLUMNS[:3])
    pos = np.stack([np.asarray(col(c), float) for c in _PELVIS_COLUMNS[3:]], axis=1) @ _C_OS_TO_ZUP.T
    rz = np.zeros((3, 3))
    quat = np.zeros(4)
    for k in range(n):
        rot_zxy(float(tilt[k]), float(lst[k]), float(rot[k]), rz)
        rr = _C_OS_TO_ZUP @ rz @ rp0.T
        mujoco.mju_mat2Quat(quat, rr.reshape(-1))
        q[k, 3:7] = quat
        q[k, 0:3] = pos[k] - rr @ op0
    jadr = int(m.jnt_qposadr[0])
    assert jadr == 0
    for j in range(1, m.njnt):
        name = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_JOINT, j)
        jt = int(m.jnt_type[j])
        if name in cols and jt in (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE)):
            scale = ang if jt == int(mujoco.mjtJoint.mjJNT_HINGE) else 1.0
            q[:, m.jnt_qposadr[j]] = np.asarray(col(name), float) * scale
    for i in range(m.neq):
        if int(m.eq_type[i]) != int(mujoco.mjtEq.mjEQ_JOINT) or m.eq_obj2id[i] < 0:
            continue
        a1 = int(m.jnt_qposadr[m.eq_obj1id[i]])
        a2 = int(m.jnt_qposadr[m.eq_obj2id[i]])
        x = q[:, a2] - m.qpos0[a2]
        c = m.eq_data[i][:5]
        q[:, a1] = m.qpos0[a1] + c[0] + x * (c[1] + x * (c[2] + x * (c[3] + x * c[4])))
    lum = None
    if all(c in cols for c in _LUMBAR_COLUMNS):
        lum = np.stack([np.asarray(col(c), float) * ang for c in _LUMBAR_COLUMNS], axis=1)
    return CoordinatesTrial(time_s=np.asarray(table.time_s, float).copy(), qpos=q, lumbar_rad=lum,
                            source=str(getattr(table, "path", "")))



@dataclass(frozen=True)
class GroundFrame:
    """Result of :func:`estimate_ground_frame`.

    ``rotation`` (3, 3): maps input coordinates to a frame with z up (floor normal) and x along the walking
    direction (``p_new = rotation @ p_in``).  ``floor_height_m``: z of the floor in the new frame (of the points
    used, which sit at their own height above the true floor if they are markers).  ``up_in``/``forward_in``: the
    two directions in input coordinates.  ``n_points``: samples fitted; ``rms_m``: their RMS distance to the plane.
    """

    rotation: np.ndarray
    floor_height_m: float
    up_in: np.ndarray
    forward_in: np.ndarray
    n_points: int
    rms_m: float


def estimate_ground_frame(foot_points_m: np.ndarray, pelvis_m: np.ndarray, rate_hz: float, *,
                          speed_m_s: float = 0.25, cutoff_hz: float = 8.0) -> GroundFrame:
    """Floor plane and walking direction of landmarks given in an unknown frame (the seed's R_adapt).

    ``foot_points_m`` (N, 2, P, 3): P landmarks on each foot (right, left), the same landmark type at the same index
    on both feet (e.g. heel, toe, lateral midfoot markers, or model sole points); ``pelvis_m`` (N, 3): a pelvis point
    (e.g. the mean of the pelvis markers).  NaN samples are ignored.

    1. forward ``f``: the principal axis of the pelvis path (least-squares line; its vertical bob and lateral sway
       are small and average out), pointing along the net displacement;
    2. floor samples: every landmark sample slower than ``speed_m_s`` (a foot flat on the floor, or the toe during
       push-off; speeds from a zero-lag ``cutoff_hz`` low-pass, rotation invariant);
    3. the floor normal ``n``: least squares over those samples with one height offset per landmark type (shared by
       the two feet): the smallest principal direction, perpendicular to ``f``, of the samples centred per type.
       ``n`` must be perpendicular to ``f`` for level walking, which leaves one angle (the roll about ``f``) to the
       feet, set by the lateral spread between left and right placements; it is oriented toward the pelvis;
    4. ``rotation`` rows: ``f``, ``n x f`` (left), ``n``.
    The method is equivariant: rotating the input rotates the result (a rotated trial is recovered to rounding).
    Its absolute accuracy is limited by how level the floor samples are: marker heights that differ between the left
    and right shoe tilt the roll by about (height difference) / (step width).
    Raises ``ValueError`` with too few samples, no net pelvis travel (standing) or floor samples from one foot only.
    """
    fp = np.asarray(foot_points_m, float)
    pel = np.asarray(pelvis_m, float)
    if fp.ndim != 4 or fp.shape[1] != 2 or fp.shape[-1] != 3:
        raise ValueError(f"foot_points_m must have shape (N, 2, P, 3), got {fp.shape}")
    if pel.shape != (fp.shape[0], 3):
        raise ValueError(f"pelvis_m must have shape (N, 3) = ({fp.shape[0]}, 3), got {pel.shape}")
    okp = np.all(np.isfinite(pel), axis=1)
    if okp.sum() < 5:
        raise ValueError(f"need at least 5 finite pelvis samples, got {int(okp.sum())}")
    pp = pel[okp]
    f = _walking_direction(pp)
    still = _still_samples(fp, rate_hz, speed_m_s, cutoff_hz)
    d, nrm = _floor_normal(fp, still, f)
    feet_mean = np.nanmean(fp[still], axis=0)
    if np.dot(np.nanmean(pp, axis=0) - feet_mean, nrm) < 0:
        nrm = -nrm
    left = np.cross(nrm, f)
    rot = np.stack([f, left, nrm])
    # floor height (of the type-0 landmark plane... of all still samples, per-type offsets averaged)
    hs = fp[still] @ nrm
    floor = float(np.median(hs))
    resid = d @ nrm
    return GroundFrame(rotation=rot, floor_height_m=floor, up_in=nrm.copy(), forward_in=f.copy(),
                       n_points=int(d.shape[0]), rms_m=float(np.sqrt(np.mean(resid ** 2))))


def _walking_direction(pp: np.ndarray) -> np.ndarray:
    """Step 1: the principal axis of the finite pelvis samples (M, 3), along the net displacement."""
    _, _, vt = np.linalg.svd(pp - pp.mean(axis=0), full_matrices=False)
    f = vt[0]
    disp = pp[-1] - pp[0]
    if np.linalg.norm(disp) < 0.05:
        raise ValueError("the pelvis travels less than 5 cm: walking direction undefined (standing?)")
    if np.dot(f, disp) < 0:
        f = -f
    return f


def _still_samples(fp: np.ndarray, rate_hz: float, speed_m_s: float, cutoff_hz: float) -> np.ndarray:
    """Step 2: (N, 2, P) bool, landmark samples slower than ``speed_m_s`` (zero-lag speed per finite run)."""
    speed = np.full(fp.shape[:3], np.inf)
    okf = np.all(np.isfinite(fp), axis=-1)  # (n, 2, P)
    for foot in range(2):
        for j in range(fp.shape[2]):
            for a, b in true_runs(okf[:, foot, j]):
                if b - a < 3:
                    continue
                zl = ZeroLagLowPass(2, cutoff_hz if cutoff_hz < 0.45 * rate_hz else None, rate_hz)
                v = zl.central_velocity(zl(fp[a:b, foot, j]))
                speed[a:b, foot, j] = np.linalg.norm(v, axis=-1)
    still = speed < speed_m_s
    feet_used = still.any(axis=(0, 2))
    if not feet_used.all():
        raise ValueError(f"floor samples from one foot only (still samples per foot: "
                         f"{still.sum(axis=(0, 2)).tolist()}): the roll about the walking direction is undefined")
    return still


def _floor_normal(fp: np.ndarray, still: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Step 3: the still samples centred per landmark type and made perpendicular to ``f`` (M, 3), and the unit
    normal (not yet oriented) perpendicular to ``f`` that fits them best."""
    cen = []
    for j in range(fp.shape[2]):
        sj = fp[:, :, j][still[:, :, j]]
        if sj.shape[0] >= 2:
            cen.append(sj - sj.mean(axis=0))
    if not cen:
        raise ValueError("fewer than 2 still samples of any landmark type")
    d = np.concatenate(cen)
    d = d - np.outer(d @ f, f)
    # basis of the plane perpendicular to f
    e1 = np.cross(f, [1.0, 0.0, 0.0])
    if np.linalg.norm(e1) < 0.5:
        e1 = np.cross(f, [0.0, 1.0, 0.0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(f, e1)
    b2 = np.stack([e1, e2])  # (2, 3)
    c2 = (d @ b2.T)
    _, v = np.linalg.eigh(c2.T @ c2)
    nrm = v[:, 0] @ b2
    nrm /= np.linalg.norm(nrm)
    return d, nrm


def cop_inside_support(trial: GroundReactionTrial, estimator: GroundReactionEstimator, q: np.ndarray,
                       tol_m: float = 1e-9) -> np.ndarray:
    """(N, 2) bool: is each foot's CoP inside the convex hull of its points on the floor (for checking)?"""
    from scipy.spatial import Delaunay, QhullError

    m, d = estimator.model, mujoco.MjData(estimator.model)
    n = trial.n_frames
    out = np.ones((n, 2), bool)
    body = estimator.body
    P = body.n_points
    for k in range(n):
        if not trial.valid[k]:
            continue
        d.qpos[:] = q[k]
        mujoco.mj_kinematics(m, d)
        pts = d.xpos[body.point_body] + np.einsum("pij,pj->pi", d.xmat[body.point_body].reshape(-1, 3, 3),
                                                  body.point_local[:, :, 0])
        for f in range(2):
            xy = pts[f * P:(f + 1) * P, :2]
            c = trial.cop_m[k, f, :2]
            try:
                tri = Delaunay(xy)
                inside = tri.find_simplex(c, tol=tol_m) >= 0
            except QhullError:  # degenerate hull (collinear points)
                inside = bool(np.min(np.linalg.norm(xy - c, axis=1)) < 1e-6)
            out[k, f] = inside
    return out
