"""Emulated AK-series drives (MIT mode) on a python-can bus, driving the simulated knee.

What is emulated, frame for frame (the drive's side of :mod:`firmware_bridge.ak_mit`)
-------------------------------------------------------------------------------------
* Not in motor mode after power-up.  ``...FC`` (ENTER) enters motor mode, ``...FD`` (EXIT)
  leaves it (torque 0), ``...FE`` (ZERO) makes the current shaft position the new zero and
  the drive then sends **no replies** for ``zero_silence_s`` (1.2 s by default; it keeps
  receiving and applying commands during that window).
* Every other 8-byte frame on the drive's id is a command, decoded with
  :func:`~firmware_bridge.ak_mit.decode_command` (the table clamps on the wire already).  The
  drive stores it *whether or not it is in motor mode*, and applies
  ``tau = Kp*(p_des - p) + Kd*(v_des - v) + tau_ff`` clamped to the table's torque range, only
  in motor mode and only while not over-temperature.
* **Replay on enable**: ENTER re-applies the last command received.  A host that sent a
  nonzero command before enabling gets that torque the moment it enables -- which is why
  hosts must send a zero command (``safe_stop_command``) before ENTER.
* A reply ``encode_reply(limits, motor_id, p, v, tau, temperature, error)`` follows every
  command, ENTER and EXIT (not ZERO), on arbitration id ``master_id`` (0 by default; the host
  id of the MIT firmware), from the motor-side state: position/velocity at the AK output
  shaft relative to the drive's zero, the torque the drive is producing, the temperature
  in whole degrees C (V2 tables; V1.x replies are 6 bytes without temperature/error).
  Frames whose length is not 8 are counted as malformed and get no reply.

Frames: output shaft = ``direction * joint + offset_rad`` (``direction`` +1/-1, as
:mod:`firmware_bridge.calibration` with gear ratio 1), drive position = shaft - zero;
drive torque acts on the joint as ``direction * tau``; several drives on the one knee add.

Thermal model and fault injection: :mod:`hil.drive_faults` (:class:`ThermalParams`,
:class:`FaultInjection`, re-exported here).

The rig (:class:`HilRig`) is synchronous: ``service(t_ns)`` drains the bus, applies frames,
sends due replies; ``step(dt_s)`` advances thermal models and the plant with the drives'
torques.  The real-time loop is :mod:`hil.plant_process`.  Command -> reply latency is for the
host to measure; the rig records the torque it delivered each step (:meth:`HilRig.trace`).
Imports: python-can, numpy, :mod:`firmware_bridge`, :mod:`hil` only.
"""
from __future__ import annotations

import heapq
import math
import random
from array import array
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import can
import numpy as np

from firmware_bridge.ak_mit import (
    ENTER_MOTOR_MODE,
    EXIT_MOTOR_MODE,
    ZERO_POSITION,
    MalformedCommand,
    MitCommand,
    decode_command,
    encode_reply,
)
from firmware_bridge.motor_tables import MitLimits

from .drive_faults import OVER_TEMPERATURE, FaultInjection, ThermalParams
from .knee_plant import SimulatedKneePlant

__all__ = [
    "ThermalParams",
    "FaultInjection",
    "EmulatedAkDrive",
    "HilRig",
    "RigStats",
    "OVER_TEMPERATURE",
    "CAN_ERR_BUSOFF",
    "CAN_ERR_PROT",
    "CAN_ERR_BUSERROR",
]

# Linux <linux/can/error.h> error-class bits, put in the error frames' arbitration id.
CAN_ERR_CRTL = 0x004
CAN_ERR_PROT = 0x008
CAN_ERR_BUSOFF = 0x040
CAN_ERR_BUSERROR = 0x080
_CAN_ERR_CRTL_TX_PASSIVE = 0x20
_CAN_ERR_PROT_STUFF = 0x04


class EmulatedAkDrive:
    """One AK drive in MIT mode (see the module docstring for the behaviour emulated).

    The rig feeds it the output-shaft state (:meth:`set_shaft_state`) and the frames on its
    id (:meth:`handle_frame`), asks it for its torque (:meth:`output_torque`) and advances
    its thermal model (:meth:`update_thermal`).  All positions/torques here are in the
    drive's own (MIT, output-shaft) frame.
    """

    def __init__(
        self,
        limits: MitLimits,
        motor_id: int,
        *,
        master_id: int = 0,
        thermal: ThermalParams = ThermalParams(),
        zero_silence_s: float = 1.2,
    ) -> None:
        if not isinstance(limits, MitLimits):
            raise TypeError(f"limits={limits!r}: expected a MitLimits (see limits_for)")
        for name, v in (("motor_id", motor_id), ("master_id", master_id)):
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 0x7FF:
                raise ValueError(f"{name}={v!r}: allowed 0..0x7FF (11-bit id)")
        if not 1 <= motor_id <= 255:
            raise ValueError(f"motor_id={motor_id!r}: allowed 1..255 (one reply byte, 0 is the host)")
        if motor_id == master_id:
            raise ValueError(f"motor_id={motor_id} equals master_id: replies would read as commands")
        if not (math.isfinite(zero_silence_s) and zero_silence_s >= 0):
            raise ValueError(f"zero_silence_s={zero_silence_s!r}: must be >= 0")
        self.limits = limits
        self.motor_id = motor_id
        self.master_id = master_id
        self.thermal = thermal
        self.zero_silence_s = float(zero_silence_s)
        self.faults = FaultInjection()
        self.motor_mode = False
        self.last_command: MitCommand | None = None
        self.applied_command: MitCommand | None = None  # what the law runs on, in motor mode
        self.zero_ref_rad = 0.0
        self.shaft_position_rad = 0.0
        self.velocity_rad_s = 0.0
        self.temperature_c = thermal.ambient_c if thermal.initial_c is None else thermal.initial_c
        self.overtemp_latched = False
        self._silent_until_ns: int | None = None
        self.requested_torque_nm = 0.0  # law before clamping (0 outside motor mode)
        self.torque_nm = 0.0  # what the drive produces (clamped, gated, + extra)
        # counters
        self.commands_received = 0
        self.enters = 0
        self.exits = 0
        self.zeros = 0
        self.malformed = 0

    # --- state ---------------------------------------------------------------------------
    @property
    def position_rad(self) -> float:
        """Reported position: output shaft relative to the drive's zero."""
        return self.shaft_position_rad - self.zero_ref_rad

    def set_shaft_state(self, shaft_position_rad: float, velocity_rad_s: float) -> None:
        self.shaft_position_rad = float(shaft_position_rad)
        self.velocity_rad_s = float(velocity_rad_s)

    @property
    def sensed_temperature_c(self) -> float:
        return self.temperature_c + self.faults.temperature_offset_c

    def _check_overtemp(self) -> None:
        if self.sensed_temperature_c > self.thermal.t_error_c:
            self.overtemp_latched = True

    @property
    def error_code(self) -> int:
        """Error code of the next reply: the injected one, else over-temperature, else 0."""
        if self.faults.error_code is not None:
            return self.faults.error_code
        return OVER_TEMPERATURE if self.overtemp_latched else 0

    def zero_silent(self, t_ns: int) -> bool:
        """True inside the no-reply window after a ZERO frame."""
        return self._silent_until_ns is not None and t_ns < self._silent_until_ns

    # --- torque --------------------------------------------------------------------------
    def output_torque(self) -> float:
        """Evaluate the impedance law at the present state; sets and returns ``torque_nm``."""
        self._check_overtemp()
        cmd = self.applied_command
        if self.motor_mode and cmd is not None:
            tau = (cmd.kp * (cmd.position_rad - self.position_rad)
                   + cmd.kd * (cmd.velocity_rad_s - self.velocity_rad_s) + cmd.torque_nm)
            self.requested_torque_nm = tau
            if self.overtemp_latched:
                tau = 0.0
            else:
                tau = min(max(tau, self.limits.t_min), self.limits.t_max)
        else:
            self.requested_torque_nm = 0.0
            tau = 0.0
        self.torque_nm = tau + self.faults.extra_torque_nm
        return self.torque_nm

    def update_thermal(self, dt_s: float) -> None:
        """Advance the winding temperature with ``torque_nm`` held for ``dt_s``."""
        th = self.thermal
        t_ss = th.steady_state_c(self.torque_nm)
        self.temperature_c = t_ss + (self.temperature_c - t_ss) * math.exp(-dt_s / th.time_constant_s)
        self._check_overtemp()

    # --- frames --------------------------------------------------------------------------
    def handle_frame(self, data: bytes, t_ns: int) -> bool:
        """Apply one frame addressed to this drive; True if the drive answers it."""
        data = bytes(data)
        if data == ENTER_MOTOR_MODE:
            self.enters += 1
            self._check_overtemp()
            if self.overtemp_latched and (
                self.sensed_temperature_c <= self.thermal.t_error_c - self.thermal.t_error_hysteresis_c
            ):
                self.overtemp_latched = False
            self.motor_mode = True
            self.applied_command = self.last_command  # replay on enable
        elif data == EXIT_MOTOR_MODE:
            self.exits += 1
            self.motor_mode = False
        elif data == ZERO_POSITION:
            self.zeros += 1
            self.zero_ref_rad = self.shaft_position_rad
            self._silent_until_ns = t_ns + int(round(self.zero_silence_s * 1e9))
            self.output_torque()
            return False
        else:
            try:
                cmd = decode_command(self.limits, data)
            except MalformedCommand:
                self.malformed += 1
                return False
            self.commands_received += 1
            self.last_command = cmd
            if self.motor_mode:
                self.applied_command = cmd
        self.output_torque()
        return not self.zero_silent(t_ns)

    def reply_payload(self) -> bytes:
        """The reply the drive would send now (before corruption), per ``faults``."""
        lim = self.limits
        mid = self.motor_id
        if self.faults.wrong_id:
            mid = (mid % 255) + 1
        if lim.reply_length == 6:
            return encode_reply(lim, mid, self.position_rad, self.velocity_rad_s, self.torque_nm)
        t_int = math.floor(self.sensed_temperature_c + 0.5)
        t_int = min(max(t_int, -lim.temperature_offset_c), 255 - lim.temperature_offset_c)
        return encode_reply(lim, mid, self.position_rad, self.velocity_rad_s, self.torque_nm,
                            t_int, self.error_code)

    def snapshot(self) -> dict[str, Any]:
        return {
            "motor_id": self.motor_id,
            "model": self.limits.model,
            "firmware": self.limits.firmware,
            "motor_mode": self.motor_mode,
            "position_rad": self.position_rad,
            "velocity_rad_s": self.velocity_rad_s,
            "torque_nm": self.torque_nm,
            "temperature_c": self.temperature_c,
            "sensed_temperature_c": self.sensed_temperature_c,
            "overtemp_latched": self.overtemp_latched,
            "error_code": self.error_code,
            "commands_received": self.commands_received,
            "enters": self.enters,
            "exits": self.exits,
            "zeros": self.zeros,
            "malformed": self.malformed,
            "faults": asdict(self.faults),
        }


@dataclass(slots=True)
class RigStats:
    """Counters of one rig (all drives)."""

    frames_received: int = 0  # every frame drained from the bus
    frames_ignored: int = 0  # not for one of our motor ids (own replies, other nodes, errors)
    frames_discarded_bus_off: int = 0
    commands_received: int = 0  # MIT commands (not special frames) applied
    specials_received: int = 0  # ENTER / EXIT / ZERO
    malformed: int = 0  # wrong length on a motor id
    replies_due: int = 0  # replies the drives produced
    replies_sent: int = 0
    replies_dropped: int = 0
    replies_corrupted: int = 0
    replies_delayed: int = 0
    replies_silenced: int = 0  # silent fault, ZERO window, bus-off
    replies_wrong_id: int = 0
    send_errors: int = 0
    error_frames_sent: int = 0
    steps: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


class HilRig:
    """Emulated drives on ``bus`` attached to ``plant`` (the one knee joint).

    ``drives``: ``(drive, direction, offset_rad)`` -- shaft = direction * joint + offset.
    ``service(t_ns)`` and ``step(dt_s)`` are called by the owner (tests synchronously,
    :mod:`hil.plant_process` in real time).  ``seed`` seeds the drop/corrupt RNG.
    ``error_frame_period_s``: at most one error frame per period while a drive has
    ``error_frames``/``bus_off`` (default: one per rig period).  ``trace_limit``: per-step
    samples kept by :meth:`trace` (later steps are counted, not stored).
    """

    def __init__(
        self,
        bus: can.BusABC,
        drives: Sequence[tuple[EmulatedAkDrive, int, float]],
        plant: SimulatedKneePlant,
        *,
        rate_hz: float = 1000.0,
        seed: int = 0,
        error_frame_period_s: float | None = None,
        trace_limit: int = 1_200_000,
    ) -> None:
        if not drives:
            raise ValueError("drives: need at least one (drive, direction, offset_rad)")
        if not (math.isfinite(rate_hz) and rate_hz > 0):
            raise ValueError(f"rate_hz={rate_hz!r}: must be > 0")
        self.bus = bus
        self.plant = plant
        self.rate_hz = float(rate_hz)
        self.dt_s = 1.0 / self.rate_hz
        self.drives: list[EmulatedAkDrive] = []
        self._dir: list[int] = []
        self._off: list[float] = []
        self._by_id: dict[int, EmulatedAkDrive] = {}
        masters = set()
        for entry in drives:
            drive, direction, offset = entry
            if direction not in (1, -1) or isinstance(direction, bool):
                raise ValueError(f"direction={direction!r} for motor {drive.motor_id}: allowed +1 or -1")
            if drive.motor_id in self._by_id:
                raise ValueError(f"motor_id={drive.motor_id} appears twice")
            self.drives.append(drive)
            self._dir.append(int(direction))
            self._off.append(float(offset))
            self._by_id[drive.motor_id] = drive
            masters.add(drive.master_id)
        clash = masters & set(self._by_id)
        if clash:
            raise ValueError(f"master id(s) {sorted(clash)} are also motor ids")
        self.rng = random.Random(seed)
        self.stats = RigStats()
        self._queue: list[tuple[int, int, can.Message]] = []
        self._seq = 0
        self._err_period_ns = int(round((error_frame_period_s or self.dt_s) * 1e9))
        self._last_err_ns: int | None = None
        self.trace_limit = int(trace_limit)
        self.trace_dropped = 0
        self._t = array("d")
        self._q = array("d")
        self._tau_joint = array("d")
        self._tau_req = [array("d") for _ in self.drives]
        self._tau_out = [array("d") for _ in self.drives]
        self._sync_drives()

    # --- plant <-> drives ----------------------------------------------------------------
    def _sync_drives(self) -> None:
        q = self.plant.flexion_rad
        qd = self.plant.flexion_velocity_rad_s
        for drive, d, off in zip(self.drives, self._dir, self._off):
            drive.set_shaft_state(d * q + off, d * qd)

    def joint_torque_nm(self) -> float:
        """Sum of the drives' present torques on the knee (joint frame)."""
        return sum(d * drive.torque_nm for drive, d in zip(self.drives, self._dir))

    def drive(self, motor_id: int) -> EmulatedAkDrive:
        return self._by_id[motor_id]

    def set_faults(self, faults: FaultInjection, motor_id: int | None = None) -> None:
        """Replace the active faults of one drive (or all when ``motor_id`` is None)."""
        for drive in self.drives:
            if motor_id is None or drive.motor_id == motor_id:
                drive.faults = faults

    # --- bus -----------------------------------------------------------------------------
    def _send(self, msg: can.Message) -> bool:
        try:
            self.bus.send(msg)
            return True
        except can.CanError:
            self.stats.send_errors += 1
            return False

    def _corrupt(self, data: bytes, drive: EmulatedAkDrive) -> bytes:
        rng = self.rng
        b = bytearray(data)
        mode = rng.randrange(3)
        if mode == 0:  # wrong length
            return bytes(b[:7]) if len(b) == 8 else bytes(b) + b"\x00"  # 8 -> 7, 6 -> 7 bytes
        if drive.faults.corrupt_payload:
            i = rng.randrange(len(b) * 8)
            b[i // 8] ^= 1 << (i % 8)
        elif mode == 1 or len(b) == 6:  # motor id byte: decode_reply(expected_motor_id) fails
            b[0] ^= 1 << rng.randrange(8)
        else:  # error-code byte, bits 3..7: code > 6, decode_reply fails
            b[7] ^= 1 << rng.randrange(3, 8)
        return bytes(b)

    def _reply(self, drive: EmulatedAkDrive, t_ns: int) -> None:
        st = self.stats
        st.replies_due += 1
        f = drive.faults
        if f.silent or f.bus_off:
            st.replies_silenced += 1
            return
        if f.drop_replies > 0.0 and self.rng.random() < f.drop_replies:
            st.replies_dropped += 1
            return
        data = drive.reply_payload()
        if f.wrong_id:
            st.replies_wrong_id += 1
        if f.corrupt_replies > 0.0 and self.rng.random() < f.corrupt_replies:
            data = self._corrupt(data, drive)
            st.replies_corrupted += 1
        msg = can.Message(arbitration_id=drive.master_id, data=data, is_extended_id=False)
        due = t_ns
        if f.delay_replies_s > 0.0:
            due += int(round(f.delay_replies_s * 1e9))
            st.replies_delayed += 1
        self._seq += 1
        heapq.heappush(self._queue, (due, self._seq, msg))

    @property
    def pending_replies(self) -> int:
        """Delayed replies queued, not yet due."""
        return len(self._queue)

    def next_due_ns(self) -> int | None:
        """When the earliest queued (delayed) reply is due, or None."""
        return self._queue[0][0] if self._queue else None

    def _flush(self, t_ns: int) -> None:
        q = self._queue
        while q and q[0][0] <= t_ns:
            _, _, msg = heapq.heappop(q)
            if self._send(msg):
                self.stats.replies_sent += 1

    def _error_frames(self, t_ns: int) -> None:
        bus_off = any(d.faults.bus_off for d in self.drives)
        errs = bus_off or any(d.faults.error_frames for d in self.drives)
        if not errs:
            return
        if self._last_err_ns is not None and t_ns - self._last_err_ns < self._err_period_ns:
            return
        self._last_err_ns = t_ns
        if bus_off:
            msg = can.Message(is_error_frame=True, arbitration_id=CAN_ERR_BUSOFF | CAN_ERR_CRTL,
                              data=bytes((0, _CAN_ERR_CRTL_TX_PASSIVE, 0, 0, 0, 0, 0, 0)),
                              is_extended_id=False)
        else:
            msg = can.Message(is_error_frame=True, arbitration_id=CAN_ERR_PROT | CAN_ERR_BUSERROR,
                              data=bytes((0, 0, _CAN_ERR_PROT_STUFF, 0, 0, 0, 0, 0)),
                              is_extended_id=False)
        if self._send(msg):
            self.stats.error_frames_sent += 1

    def service(self, t_ns: int) -> int:
        """Drain the bus, apply frames for our motor ids, send due replies and error frames.

        ``t_ns``: the caller's monotonic time (ns) -- reply due times and the ZERO window use
        it.  Returns the number of frames drained.
        """
        st = self.stats
        n = 0
        self._sync_drives()
        by_id = self._by_id
        recv = self.bus.recv
        while True:
            msg = recv(timeout=0.0)
            if msg is None:
                break
            n += 1
            st.frames_received += 1
            drive = None
            if not (msg.is_error_frame or msg.is_remote_frame or msg.is_extended_id or msg.is_fd):
                drive = by_id.get(msg.arbitration_id)
            if drive is None:
                st.frames_ignored += 1
                continue
            if drive.faults.bus_off:
                st.frames_discarded_bus_off += 1
                continue
            data = bytes(msg.data)
            if len(data) == 8 and data[:7] == ENTER_MOTOR_MODE[:7] and data[7] in (0xFC, 0xFD, 0xFE):
                st.specials_received += 1
            before_cmd, before_bad = drive.commands_received, drive.malformed
            answer = drive.handle_frame(data, t_ns)
            st.commands_received += drive.commands_received - before_cmd
            st.malformed += drive.malformed - before_bad
            if answer:
                self._reply(drive, t_ns)
            elif drive.zero_silent(t_ns) and drive.malformed == before_bad:
                st.replies_silenced += 1
        self._flush(t_ns)
        self._error_frames(t_ns)
        return n

    # --- time ----------------------------------------------------------------------------
    def step(self, dt_s: float | None = None) -> float:
        """Advance drives (torque, thermal) and the plant by ``dt_s`` (default 1/rate_hz).

        The drives' torques are evaluated at the state at the start of the step and held.
        Returns the joint torque applied.
        """
        dt = self.dt_s if dt_s is None else float(dt_s)
        self._sync_drives()
        tau_joint = 0.0
        for drive, d in zip(self.drives, self._dir):
            drive.output_torque()
            drive.update_thermal(dt)
            tau_joint += d * drive.torque_nm
        self.plant.step(tau_joint, dt)
        self.stats.steps += 1
        if len(self._t) < self.trace_limit:
            self._t.append(float(self.plant.time_s))
            self._q.append(self.plant.flexion_rad)
            self._tau_joint.append(tau_joint)
            for i, drive in enumerate(self.drives):
                self._tau_req[i].append(drive.requested_torque_nm)
                self._tau_out[i].append(drive.torque_nm)
        else:
            self.trace_dropped += 1
        self._sync_drives()
        return tau_joint

    def trace(self) -> dict[str, np.ndarray]:
        """Per-step record: plant time ``t_s`` (end of step), ``flexion_rad`` (end of step),
        ``joint_torque_nm`` (applied during the step, joint frame) and per motor id
        ``requested_torque_nm_<id>`` (law before clamp) / ``torque_nm_<id>`` (delivered),
        drive frame."""
        out = {
            "t_s": np.frombuffer(self._t, dtype=float).copy(),
            "flexion_rad": np.frombuffer(self._q, dtype=float).copy(),
            "joint_torque_nm": np.frombuffer(self._tau_joint, dtype=float).copy(),
        }
        for i, drive in enumerate(self.drives):
            out[f"requested_torque_nm_{drive.motor_id}"] = np.frombuffer(self._tau_req[i], dtype=float).copy()
            out[f"torque_nm_{drive.motor_id}"] = np.frombuffer(self._tau_out[i], dtype=float).copy()
        return out

    def flush_pending(self) -> int:
        """Send every queued reply now (e.g. at shutdown); returns how many."""
        n = len(self._queue)
        self._flush(1 << 62)
        return n

    def summary(self) -> dict[str, Any]:
        """Counters, drive states and a summary of the plant trace (JSON-able)."""
        tr = self.trace()
        q = tr["flexion_rad"]
        tau = tr["joint_torque_nm"]
        plant_summary: dict[str, Any] = {"samples": int(q.size), "samples_not_stored": self.trace_dropped,
                                         "final_flexion_rad": self.plant.flexion_rad,
                                         "plant_time_s": float(self.plant.time_s)}
        if q.size:
            plant_summary.update(
                flexion_min_rad=float(q.min()), flexion_max_rad=float(q.max()),
                flexion_mean_rad=float(q.mean()),
                joint_torque_mean_nm=float(tau.mean()), joint_torque_abs_max_nm=float(np.abs(tau).max()),
                joint_torque_rms_nm=float(np.sqrt(np.mean(tau * tau))),
            )
        drives = []
        for drive in self.drives:
            s = drive.snapshot()
            req = tr[f"requested_torque_nm_{drive.motor_id}"]
            out = tr[f"torque_nm_{drive.motor_id}"]
            if out.size:
                s["torque_delivered_rms_nm"] = float(np.sqrt(np.mean(out * out)))
                s["torque_requested_rms_nm"] = float(np.sqrt(np.mean(req * req)))
                s["torque_mismatch_steps"] = int(np.count_nonzero(np.abs(req - out) > 1e-9))
            drives.append(s)
        return {"stats": self.stats.to_dict(), "drives": drives, "plant": plant_summary}
