"""The telemetry topics of a run (``runtime.session.RunSession``): their names and record -> ROS 2 message converters.

Records are what the loops produce (torque-loop records and safety events from the shared rings, CAN frames, the
estimation loop's tuples); every converter adds ``offset_ns`` (wall clock minus monotonic, fixed at the start of
the run) to the stamp so ROS tools show real dates, while every ``*_ns`` field inside a message stays monotonic.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from runtime.core.channels import STATE_NAMES
from runtime.pipeline.frame import TopicSpec
from runtime.telemetry import schema
from runtime.telemetry.log import TelemetryLog

T_EST_TIMING = "/exo/estimation/timing"
T_EST_ASSIST = "/exo/estimation/assistance"
T_TQ_TIMING = "/exo/torque/timing"
T_TQ_COMMAND = "/exo/torque/command"
T_JOINT_STATES = "/exo/joint_states"
T_FAULTS = "/exo/faults"
T_SUMMARY = "/exo/loop_summary"
T_CAN = "/exo/can/frames"


def _est_timing(offset_ns: int, r: tuple) -> Any:
    """``(stamp_ns, cycle, scheduled_ns, start_ns, end_ns, missed, stage_names, stage_seconds)`` of the estimation loop."""
    return schema.make("exo_runtime/msg/CycleTiming", stamp=r[0] + offset_ns, loop_name="estimation", cycle=r[1],
                       scheduled_ns=r[2], start_ns=r[3], end_ns=r[4], lateness_s=(r[3] - r[2]) * 1e-9,
                       duration_s=(r[4] - r[3]) * 1e-9, missed_total=r[5], stage_names=r[6], stage_durations_s=r[7])


def _est_assist(names: list[str], offset_ns: int, r: tuple) -> Any:
    """``(capture_ns, torque per joint N*m)``: the assistance the estimation loop published."""
    return schema.make("sensor_msgs/msg/JointState",
                       header=schema.make("std_msgs/msg/Header", stamp=r[0] + offset_ns, frame_id="capture"),
                       name=names, position=[], velocity=[], effort=r[1])


def _tq_timing(offset_ns: int, rec: Any) -> Any:
    """One torque-loop record's cycle timing (read / safety / write stage seconds)."""
    start, scheduled, end = int(rec["start_ns"]), int(rec["scheduled_ns"]), int(rec["end_ns"])
    return schema.make("exo_runtime/msg/CycleTiming", stamp=start + offset_ns, loop_name="torque",
                       cycle=int(rec["cycle"]), scheduled_ns=scheduled, start_ns=start, end_ns=end,
                       lateness_s=(start - scheduled) * 1e-9, duration_s=(end - start) * 1e-9,
                       missed_total=int(rec["missed_total"]), stage_names=["read", "safety", "write"],
                       stage_durations_s=[float(rec["stage_read_s"]), float(rec["stage_safety_s"]),
                                          float(rec["stage_write_s"])])


def _tq_command(names: list[str], offset_ns: int, rec: Any) -> Any:
    """One torque-loop record's requested and commanded torque (N*m), command age, fade gain and state."""
    return schema.make("exo_runtime/msg/TorqueCommand", stamp=int(rec["write_ns"]) + offset_ns, joint_names=names,
                       requested_torque_nm=rec["requested_nm"], commanded_torque_nm=rec["commanded_nm"],
                       command_age_s=int(rec["command_age_ns"]) * 1e-9, fade_gain=float(rec["fade_gain"]),
                       state=STATE_NAMES[int(rec["state"])], stale=bool(rec["stale"]))


def _joint_states(names: list[str], offset_ns: int, rec: Any) -> Any:
    """One torque-loop record's measured joint position (rad), velocity (rad/s) and torque (N*m)."""
    return schema.make("sensor_msgs/msg/JointState",
                       header=schema.make("std_msgs/msg/Header", stamp=int(rec["start_ns"]) + offset_ns, frame_id=""),
                       name=names, position=rec["position_rad"], velocity=rec["velocity_rad_s"],
                       effort=rec["measured_torque_nm"])


def _fault(offset_ns: int, ev: Any) -> Any:
    """One safety event from the event ring."""
    return schema.make("exo_runtime/msg/Fault", stamp=int(ev["t_ns"]) + offset_ns,
                       source=ev["source"].decode() or ev["what"].decode(),
                       kind=ev["kind"].decode() or ev["what"].decode().upper(),
                       value=float(ev["value"]), t_ns=int(ev["t_ns"]), latched=bool(ev["latched"]),
                       detail=f"{ev['state'].decode()}: {ev['detail'].decode('utf-8', 'replace')}")


def _can_frame(channel: str, offset_ns: int, fr: Any) -> Any:
    """One CAN frame (tx or rx) from the CAN ring; ``data`` cut to its DLC."""
    n = int(fr["dlc"])
    return schema.make("exo_runtime/msg/CanFrame", stamp=int(fr["t_ns"]) + offset_ns, channel=channel,
                       arbitration_id=int(fr["arbitration_id"]), is_extended=int(fr["arbitration_id"]) > 0x7FF,
                       is_rx=bool(fr["is_rx"]), is_error=bool(fr["is_error"]), dlc=n, data=fr["data"][:n])


def _summary(r: dict[str, Any]) -> Any:
    """A loop's summary fields (see :func:`summary_fields`)."""
    return schema.make("exo_runtime/msg/LoopSummary", **r)


def register_run_topics(log: TelemetryLog, joint_names: list[str], offset_ns: int, can_channel: str | None) -> None:
    """Register the run's own topics on ``log``; the CAN topic only when ``can_channel`` is given (a real bus)."""
    names = joint_names
    log.register(T_EST_TIMING, "exo_runtime/msg/CycleTiming", partial(_est_timing, offset_ns))
    log.register(T_EST_ASSIST, "sensor_msgs/msg/JointState", partial(_est_assist, names, offset_ns))
    log.register(T_TQ_TIMING, "exo_runtime/msg/CycleTiming", partial(_tq_timing, offset_ns))
    log.register(T_TQ_COMMAND, "exo_runtime/msg/TorqueCommand", partial(_tq_command, names, offset_ns))
    log.register(T_JOINT_STATES, "sensor_msgs/msg/JointState", partial(_joint_states, names, offset_ns))
    log.register(T_FAULTS, "exo_runtime/msg/Fault", partial(_fault, offset_ns))
    log.register(T_SUMMARY, "exo_runtime/msg/LoopSummary", _summary)
    if can_channel is not None:
        log.register(T_CAN, "exo_runtime/msg/CanFrame", partial(_can_frame, can_channel, offset_ns))


def _with_offset(to_msg: Callable[[Any, int], Any], offset_ns: int, record: Any) -> Any:
    return to_msg(record, offset_ns)


def register_pipeline_topics(log: TelemetryLog, specs: list[TopicSpec], offset_ns: int) -> None:
    """Register the topics the pipeline's stages declare (``TopicSpec.to_msg(record, offset_ns)``)."""
    for spec in specs:
        log.register(spec.topic, spec.msgtype, partial(_with_offset, spec.to_msg, offset_ns))


def summary_fields(r: dict[str, Any], stamp_ns: int) -> dict[str, Any]:
    """The ``LoopSummary`` fields of a loop report (``LoopReport.as_dict()``) stamped ``stamp_ns``."""
    lat, dur = r["lateness"], r["duration"]
    return dict(stamp=stamp_ns, loop_name=r["name"], rate_hz=float(r["rate_hz"]), cycles=int(r["cycles"]),
                missed=int(r["missed"]), lateness_p50_s=float(lat["p50_s"]), lateness_p99_s=float(lat["p99_s"]),
                lateness_max_s=float(lat["max_s"]), duration_p50_s=float(dur["p50_s"]),
                duration_p99_s=float(dur["p99_s"]), duration_max_s=float(dur["max_s"]))
