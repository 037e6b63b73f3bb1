"""The record layouts shared by the estimation and torque processes, and the control slots.

One definition, used by both ends: the command the pipeline publishes, the
per-cycle record the torque loop emits, and the safety events it emits.
Times are monotonic ns; torques N*m at the joint; angles rad.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_JOINTS = 8


def command_dtype(n_joints: int) -> np.dtype:
    """Assistance command from the estimation loop (latest-value buffer)."""
    return np.dtype([
        ("frame_index", "i8"),       # pipeline cycle that produced it
        ("capture_ns", "i8"),        # capture time of the input frame (monotonic): the torque loop's staleness
        ("write_ns", "i8"),          # when the pipeline published it
        ("torque_nm", "f8", (n_joints,)),
        ("knee_rad", "f8"),          # the estimator's knee flexion angle of the assisted leg (rad; NaN: none),
    ])                               # for the torque loop's tissue compensator


def torque_record_dtype(n_joints: int) -> np.dtype:
    """One torque-loop cycle, for telemetry (ring)."""
    return np.dtype([
        ("cycle", "i8"), ("scheduled_ns", "i8"), ("start_ns", "i8"), ("write_ns", "i8"), ("end_ns", "i8"),
        ("missed_total", "i8"), ("state", "i1"), ("stale", "?"), ("fade_gain", "f8"),
        ("command_frame", "i8"), ("command_age_ns", "i8"),       # age from capture to bus write; stale: from capture
        ("requested_nm", "f8", (n_joints,)), ("commanded_nm", "f8", (n_joints,)),
        ("position_rad", "f8", (n_joints,)), ("velocity_rad_s", "f8", (n_joints,)),
        ("measured_torque_nm", "f8", (n_joints,)),
        ("stage_read_s", "f8"), ("stage_safety_s", "f8"), ("stage_write_s", "f8"),
        ("motor_request_nm", "f8", (n_joints,)),                  # after the tissue compensator, before the supervisor
    ])


EVENT_DTYPE = np.dtype([
    ("t_ns", "i8"), ("what", "S16"), ("state", "S10"), ("source", "S32"), ("kind", "S24"),
    ("value", "f8"), ("latched", "?"), ("detail", "S96"),
])

CAN_FRAME_DTYPE = np.dtype([
    ("t_ns", "i8"), ("arbitration_id", "u4"), ("dlc", "u1"), ("data", "u1", (8,)), ("is_rx", "?"), ("is_error", "?"),
])

STATE_CODES = {"INACTIVE": 0, "ACTIVE": 1, "FADING": 2, "FAULTED": 3}
STATE_NAMES = {v: k for k, v in STATE_CODES.items()}


@dataclass(frozen=True, slots=True)
class Slot:
    """Indices into the ControlBlock (int64 each)."""

    REQ_ACTIVE = 0         # main -> torque: 1 = be ACTIVE, 0 = fade to INACTIVE
    REQ_SHUTDOWN = 1       # main -> torque: 1 = fade then stop, 2 = zero now and stop
    REQ_RESET_SEQ = 2      # main -> torque: increment to request a fault reset
    REQ_ESTOP = 3          # main -> torque: nonzero = emergency stop (latched ESTOP fault)
    ST_READY = 8           # torque -> main: 1 once the loop runs
    ST_STATE = 9           # torque -> main: STATE_CODES
    ST_CYCLES = 10
    ST_MISSED = 11
    ST_HEARTBEAT_NS = 12
    ST_LATCHED = 13        # number of latched faults
    ST_EXITED = 14         # 1 when the loop ended and the drive got its final zero
    N = 16
