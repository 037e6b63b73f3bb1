"""Telemetry topics of the estimation chain (one message per 60 Hz cycle), ROS 2 standard types.

=================================  ==============================  ==========================================
topic                              type                            content
=================================  ==============================  ==========================================
/exo/estimation/joint_angles       sensor_msgs/JointState          position: reported coordinates (rad)
/exo/estimation/grf/{r,l}          geometry_msgs/WrenchStamped     foot force (N), free moment (N m), world
/exo/estimation/cop/{r,l}          geometry_msgs/PointStamped      centre of pressure (m), world (NaN unloaded)
/exo/estimation/knee_moments       sensor_msgs/JointState          effort: kam_<s>, kem_<s> (%BW*ht)
/exo/estimation/activations        sensor_msgs/JointState          effort: activation 0..1 per muscle
/exo/estimation/synergies          sensor_msgs/JointState          effort: syn_1..syn_K coefficients
/exo/estimation/kcf                sensor_msgs/JointState          effort: medial, lateral, total (N)
/exo/estimation/confidence         sensor_msgs/JointState          effort: confidence, then every part of it
                                                                   (``models.confidence.PART_NAMES``), 0..1
/exo/estimation/stage_latency      exo_runtime/CycleTiming         per camera frame: vision stages (pose,
                                                                   anonymise, ground) + the chain's stages (s)
=================================  ==============================  ==========================================

Header stamps are the frame's capture time (wall-clock ns, like every log time); ``frame_id`` names the
frame of the vectors. Snapshots copy the values on the estimation thread; messages are built on the
log's writer thread.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runtime.telemetry import schema
from runtime.pipeline.frame import TopicSpec

if TYPE_CHECKING:  # annotations only: the chain imports nothing of runtime
    from runtime.estimation.chain import KinematicsToLoads

T_ANGLES = "/exo/estimation/joint_angles"
T_GRF = "/exo/estimation/grf/{}"
T_COP = "/exo/estimation/cop/{}"
T_KNEE = "/exo/estimation/knee_moments"
T_ACT = "/exo/estimation/activations"
T_SYN = "/exo/estimation/synergies"
T_KCF = "/exo/estimation/kcf"
T_STAGES = "/exo/estimation/stage_latency"
T_CONFIDENCE = "/exo/estimation/confidence"
FOOT_SUFFIX = ("r", "l")          # runtime.estimation.chain FEET order: right, left


def _header(t_ns: int, frame_id: str):
    return schema.make("std_msgs/msg/Header", stamp=int(t_ns), frame_id=frame_id)


def _joint_state(frame_id: str, names: list[str], *, position: bool):
    def to_msg(rec, offset_ns: int):
        t, values = rec
        return schema.make("sensor_msgs/msg/JointState", header=_header(t + offset_ns, frame_id), name=names,
                           position=values if position else [], velocity=[], effort=[] if position else values)
    return to_msg


def topics(estimator: KinematicsToLoads) -> list[TopicSpec]:
    """The per-cycle topics of ``estimator``'s outputs (muscle topics only when it runs the muscles)."""
    side = estimator.params.side[0]
    out = [
        TopicSpec(T_ANGLES, "sensor_msgs/msg/JointState", _joint_state("model", list(estimator.reported), position=True),
                  lambda f: None if not f.new_estimate else (f.capture_ns, f.estimate.coordinates_rad.tolist())),
        TopicSpec(T_KNEE, "sensor_msgs/msg/JointState", _joint_state(f"tibia_{side}", [f"kam_{side}", f"kem_{side}"],
                                                                     position=False),
                  lambda f: None if not f.new_estimate else (f.capture_ns, [f.estimate.kam_pct_bw_ht,
                                                                            f.estimate.kem_pct_bw_ht])),
    ]
    for k, s in enumerate(FOOT_SUFFIX):
        out.append(TopicSpec(T_GRF.format(s), "geometry_msgs/msg/WrenchStamped", _wrench,
                             lambda f, k=k: None if not f.new_estimate else (f.capture_ns, f.estimate.grf_n[k].tolist(),
                                                                      float(f.estimate.free_moment_nm[k]))))
        out.append(TopicSpec(T_COP.format(s), "geometry_msgs/msg/PointStamped", _point,
                             lambda f, k=k: None if not f.new_estimate else (f.capture_ns, f.estimate.cop_m[k].tolist())))
    out.append(TopicSpec(T_STAGES, "exo_runtime/msg/CycleTiming", _stage_latency, _stage_snapshot))
    out.append(TopicSpec(T_CONFIDENCE, "sensor_msgs/msg/JointState",
                         _joint_state("confidence", confidence_names(estimator), position=False),
                         lambda f: None if not f.new_estimate else (f.capture_ns, [f.estimate.confidence]
                                                                    + f.estimate.confidence_parts.tolist())))
    if estimator.so is not None:
        out += [
            TopicSpec(T_ACT, "sensor_msgs/msg/JointState", _joint_state("muscles", list(estimator.muscle_names),
                                                                        position=False),
                      lambda f: None if not f.new_estimate else (f.capture_ns, f.estimate.activation.tolist())),
            TopicSpec(T_SYN, "sensor_msgs/msg/JointState",
                      _joint_state(f"synergies_{side}", [f"syn_{i + 1}" for i in range(estimator.synergies.k)],
                                   position=False),
                      lambda f: None if not f.new_estimate else (f.capture_ns, f.estimate.synergy.tolist())),
            TopicSpec(T_KCF, "sensor_msgs/msg/JointState", _joint_state(f"tibia_{side}", ["medial", "lateral", "total"],
                                                                        position=False),
                      lambda f: None if not f.new_estimate else (f.capture_ns, f.estimate.kcf_n.tolist())),
        ]
    return out


def confidence_names(estimator: KinematicsToLoads) -> list[str]:
    """The names of :data:`T_CONFIDENCE`'s values: ``confidence`` then each part."""
    return ["confidence"] + list(estimator.out.confidence_names)


def _wrench(rec, offset_ns: int):
    t, f, mz = rec
    v = schema.make("geometry_msgs/msg/Vector3", x=f[0], y=f[1], z=f[2])
    tz = schema.make("geometry_msgs/msg/Vector3", x=0.0, y=0.0, z=mz)
    return schema.make("geometry_msgs/msg/WrenchStamped", header=_header(t + offset_ns, "world"),
                       wrench=schema.make("geometry_msgs/msg/Wrench", force=v, torque=tz))


def _point(rec, offset_ns: int):
    t, p = rec
    return schema.make("geometry_msgs/msg/PointStamped", header=_header(t + offset_ns, "world"),
                       point=schema.make("geometry_msgs/msg/Point", x=p[0], y=p[1], z=p[2]))


def _stage_snapshot(f) -> Any:
    """Per new camera frame: the vision front end's stage times and the chain's (None on held cycles)."""
    import time

    if not f.vision_s or f.estimate is None or not f.new_estimate:
        return None
    stages = dict(f.vision_s)
    stages.update(f.estimate.stage_s)
    return (f.capture_ns, f.index, time.monotonic_ns(), list(stages), list(stages.values()))


def _stage_latency(rec, offset_ns: int):
    capture_ns, index, done_ns, names, secs = rec
    return schema.make("exo_runtime/msg/CycleTiming", stamp=capture_ns + offset_ns, loop_name="frame", cycle=index,
                       scheduled_ns=capture_ns, start_ns=capture_ns, end_ns=done_ns, lateness_s=0.0,
                       duration_s=float(sum(secs)), missed_total=0, stage_names=names, stage_durations_s=secs)
