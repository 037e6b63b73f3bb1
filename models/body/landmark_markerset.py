"""BlazePose landmarks as markers on a MuJoCo leg model (MyoLeg or a subject-scaled copy).

BlazePose's keypoints are not skin markers: they are learned estimates of joint centres and a few
surface points. Each landmark used for inverse kinematics is placed on a model body as a
:class:`~models.body.markerset.Marker`, at a point computed from the **model's own kinematics** at its
default pose (``qpos0``, joint equalities applied), so a scaled model gets scaled placements:

============================  ==========  =====================================================
landmark                      body        point (body frame: OpenSim axes, x forward, y up, z right)
============================  ==========  =====================================================
``left_hip`` / ``right_hip``  pelvis      the hip joint centre (origin of ``femur_*``) plus
                                          ``hip_offset_m`` (default lateral 0.0 m, see below)
``left_knee`` / ...           femur_*     the knee centre: origin of ``tibia_*`` at knee angle 0
``left_ankle`` / ...          tibia_*     the ankle centre: origin of ``talus_*``
``left_heel`` / ...           calcn_*     the calcaneus origin (posterior heel) + ``HEEL_OFFSET_M``
``left_foot_index`` / ...     toes_*      toes origin (metatarsal heads) + ``TOE_TIP_OFFSET_M``
``left_shoulder`` / ...       torso       glenohumeral centre of Rajagopal 2016 (torso frame
                                          ``(0.0032, 0.3715, +-0.17)`` m) scaled with the legs
============================  ==========  =====================================================

Offsets on the left are mirrored (z -> -z). ``HEEL_OFFSET_M``, ``TOE_TIP_OFFSET_M`` and the shoulder
point are generic-model values multiplied by the leg length ratio of the model to generic MyoLeg
(femur + tibia). The hip offset: BlazePose's hip keypoint (COCO-style annotation near the
greater trochanter) sits near the hip joint centre; with ``hip_offset_m = 0`` the IK treats it as
the joint centre. MyoLeg's torso is welded to the pelvis (no lumbar joint), so shoulders constrain
the pelvis orientation only through a rigid trunk: they get weight :data:`SHOULDER_WEIGHT` (0.2)
in :func:`landmark_ik_params`. Head, arm and hand landmarks are not used (MyoLeg has no arms).

Frames: landmark positions passed to the IK are world, z up, metres (see
``runtime.vision.world`` for the monocular grounding and ``runtime.vision.triangulation`` for the
multi-view reference).
"""
from __future__ import annotations

from typing import Any, Mapping

import mujoco
import numpy as np

from models.kinematics.ik_types import DEFAULT_COORDINATES, IKParams
from models.body.markerset import Marker, MarkerSet, _as_mjmodel, apply_joint_equalities

__all__ = [
    "LANDMARK_NAMES",
    "HEEL_OFFSET_M",
    "TOE_TIP_OFFSET_M",
    "SHOULDER_IN_TORSO_M",
    "SHOULDER_WEIGHT",
    "blazepose_markerset",
    "landmark_ik_params",
    "landmark_length_factors",
]

#: BlazePose landmarks placed on the model (names as in ``runtime.vision.pose_types.BLAZEPOSE_LANDMARKS``).
LANDMARK_NAMES: tuple[str, ...] = tuple(
    f"{s}_{p}" for p in ("hip", "knee", "ankle", "heel", "foot_index", "shoulder") for s in ("left", "right")
)
#: Heel point in the right calcaneus frame, m (generic MyoLeg): slightly posterior and below the origin.
HEEL_OFFSET_M = np.array([-0.005, -0.01, 0.0])
#: Tip of the second toe in the right toes frame, m (generic MyoLeg): about 6 cm beyond the metatarsal heads.
TOE_TIP_OFFSET_M = np.array([0.06, -0.005, -0.01])
#: Right glenohumeral centre in the torso frame (Rajagopal 2016 shoulder joint location), m.
SHOULDER_IN_TORSO_M = np.array([0.003155, 0.3715, 0.17])
#: IK weight of the shoulder landmarks (rigid trunk assumption); every other landmark has weight 1.
SHOULDER_WEIGHT = 0.2
#: Generic MyoLeg femur + tibia length (hip-knee + knee-ankle origins), m, the reference of the scaled offsets.
_GENERIC_LEG_M = 0.4044 + 0.4001

_MIRROR = np.array([1.0, 1.0, -1.0])


def _origins_in(model: mujoco.MjModel, d: mujoco.MjData, host: str, child: str) -> np.ndarray:
    h = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, host)
    c = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, child)
    if h < 0 or c < 0:
        missing = host if h < 0 else child
        raise KeyError(f"model has no body {missing!r} (a BlazePose marker set needs MyoLeg's leg bodies)")
    r = d.xmat[h].reshape(3, 3)
    return r.T @ (d.xpos[c] - d.xpos[h])


def blazepose_markerset(model: Any, *, hip_offset_m: tuple[float, float, float] = (0.0, 0.0, 0.0),
                        include_shoulders: bool = True) -> MarkerSet:
    """The BlazePose landmark :class:`MarkerSet` for ``model`` (MyoLeg or a scaled copy; see the module docstring).

    ``hip_offset_m``: hip keypoint minus hip joint centre, right side, pelvis frame (x forward, y up, z lateral
    for the right hip), m; mirrored for the left.
    """
    m = _as_mjmodel(model)
    off = np.asarray(hip_offset_m, dtype=float).reshape(-1)
    if off.shape != (3,) or not np.all(np.isfinite(off)) or np.linalg.norm(off) > 0.15:
        raise ValueError(f"hip_offset_m must be 3 finite numbers within 0.15 m of the joint centre, got {hip_offset_m!r}")
    d = mujoco.MjData(m)
    q = np.array(m.qpos0, dtype=float)
    apply_joint_equalities(m, q)
    d.qpos[:] = q
    mujoco.mj_kinematics(m, d)
    markers: list[Marker] = []
    leg = {}
    for s in "rl":
        leg[s] = float(np.linalg.norm(_origins_in(m, d, f"femur_{s}", f"tibia_{s}"))
                       + np.linalg.norm(_origins_in(m, d, f"tibia_{s}", f"talus_{s}")))
    ratio = 0.5 * (leg["r"] + leg["l"]) / _GENERIC_LEG_M
    for side, s in (("left", "l"), ("right", "r")):
        mir = _MIRROR if s == "l" else np.ones(3)
        markers.append(Marker(f"{side}_hip", "pelvis", _origins_in(m, d, "pelvis", f"femur_{s}") + off * mir))
        markers.append(Marker(f"{side}_knee", f"femur_{s}", _origins_in(m, d, f"femur_{s}", f"tibia_{s}")))
        markers.append(Marker(f"{side}_ankle", f"tibia_{s}", _origins_in(m, d, f"tibia_{s}", f"talus_{s}")))
        markers.append(Marker(f"{side}_heel", f"calcn_{s}", HEEL_OFFSET_M * ratio * mir))
        markers.append(Marker(f"{side}_foot_index", f"toes_{s}", TOE_TIP_OFFSET_M * ratio * mir))
        if include_shoulders:
            if mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, "torso") < 0:
                raise KeyError("model has no body 'torso'; pass include_shoulders=False")
            markers.append(Marker(f"{side}_shoulder", "torso", SHOULDER_IN_TORSO_M * ratio * mir))
    order = {n: i for i, n in enumerate(LANDMARK_NAMES)}
    markers.sort(key=lambda mk: order[mk.name])
    return MarkerSet(markers=tuple(markers), source="BlazePose landmarks (models.body.landmark_markerset)",
                     scale_factors={"leg_length_ratio": ratio})


def landmark_ik_params(weights: Mapping[str, float] | None = None, **overrides: Any) -> IKParams:
    """:class:`IKParams` for landmark IK: the default coordinates (hip 3, knee, ankle per side), shoulders at
    :data:`SHOULDER_WEIGHT`, at least 6 landmarks per frame, re-initialised above 8 cm RMS (landmarks are
    noisier than markers). ``weights`` overrides per-landmark weights; ``overrides`` any other field."""
    w = {f"{s}_shoulder": SHOULDER_WEIGHT for s in ("left", "right")}
    w.update(dict(weights or {}))
    kw: dict[str, Any] = dict(coordinates=DEFAULT_COORDINATES, marker_weights=w, min_markers=6, reinit_rms_m=0.08)
    # (a marker set without shoulders: pass marker_weights={} among the overrides)
    kw.update(overrides)
    return IKParams(**kw)


#: (bodies scaled, landmark pair measured) per side; ``{s}`` is the side letter, ``{side}`` the side name.
_SEGMENTS = (
    (("femur_{s}", "patella_{s}"), ("{side}_hip", "{side}_knee")),
    (("tibia_{s}",), ("{side}_knee", "{side}_ankle")),
    (("talus_{s}", "calcn_{s}", "toes_{s}"), ("{side}_heel", "{side}_foot_index")),
)


def landmark_length_factors(template: Any, landmarks_m: np.ndarray, names: tuple[str, ...],
                            min_frames: int = 5) -> tuple[dict[str, float], dict[str, float]]:
    """Segment length factors (subject / ``template``) from landmark distances, for
    ``models.body.scaling.scale_model(..., length_by_body=...)``: thigh (hip-knee) -> femur and patella, shank
    (knee-ankle) -> tibia, foot (heel-toe tip) -> talus, calcaneus and toes, pelvis (hip-hip width) -> pelvis;
    median over frames, mean of both sides, divided by the same distance between this module's markers on the
    template at its default pose. ``landmarks_m`` (N, L, 3) named by ``names``. Returns ``(factors, measured_m)``."""
    m = _as_mjmodel(template)
    mset = blazepose_markerset(m, include_shoulders=False)
    from models.kinematics.inverse_kinematics import InverseKinematics

    q0 = np.array(m.qpos0, dtype=float)
    ref = dict(zip(mset.names, InverseKinematics(m, mset, landmark_ik_params(weights={}, marker_weights={})).marker_positions(q0)))
    P = np.asarray(landmarks_m, dtype=float)
    idx = {n: i for i, n in enumerate(names)}

    def med(a: str, b: str) -> float:
        d = np.linalg.norm(P[:, idx[a]] - P[:, idx[b]], axis=1)
        d = d[np.isfinite(d)]
        if d.size < min_frames:
            raise ValueError(f"landmarks: {a!r}-{b!r} seen in only {d.size} frames (need {min_frames}) to scale the model")
        return float(np.median(d))

    factors: dict[str, float] = {}
    measured: dict[str, float] = {}
    for bodies, (a, b) in _SEGMENTS:
        vals, refs = [], []
        for side, s in (("left", "l"), ("right", "r")):
            la, lb = a.format(side=side), b.format(side=side)
            vals.append(med(la, lb))
            refs.append(float(np.linalg.norm(ref[la] - ref[lb])))
        f = float(np.mean(vals) / np.mean(refs))
        measured[f"{a.format(side='left')[5:]}-{b.format(side='left')[5:]}"] = float(np.mean(vals))
        for s in "lr":
            for body in bodies:
                factors[body.format(s=s)] = f
    w = med("left_hip", "right_hip")
    measured["hip-hip"] = w
    factors["pelvis"] = w / float(np.linalg.norm(ref["left_hip"] - ref["right_hip"]))
    return factors, measured
