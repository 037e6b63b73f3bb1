"""AK-series drives in MIT mode over python-can: the torque loop's CAN back end.

:class:`AkCanDrive` is a :class:`~firmware_bridge.drive_interface.DriveBase` (= ``runtime.control.drive.Drive``;
nothing of ``runtime`` is imported): ``enable``, ``write``/``read`` (returning a ``DriveResult``), ``disable``,
``poll_faults``, ``velocity_check``, ``close`` and the context manager, plus ``zero_position`` and ``stats``.

Units and frames: ``write``/``read`` are joint side (N*m, rad, rad/s), converted with each
actuator's :class:`~firmware_bridge.calibration.ActuatorCalibration` (direction, gear ratio,
zero offset, Kt override); the wire is the MIT frame of :mod:`firmware_bridge.ak_mit`.
Times ``t_ns`` are the caller's monotonic cycle times; every timeout and rate limit here is
measured in them (``clock_ns`` only timestamps ``frame_log`` entries).

Bus problems are values, never exceptions
-----------------------------------------
``write``/``read`` (and ``enable``/``disable``/``zero_position``) never raise for bus
problems.  They record faults, collected by :meth:`AkCanDrive.poll_faults` as
``(source, kind, value, t_ns)`` tuples:

============  ==================  ==========================================================
kind          source              when / value
============  ==================  ==========================================================
BUS_ERROR     ``can.bus``         ``bus.send`` raised ``can.CanError``/``OSError`` (e.g.
                                  ENOBUFS "No buffer space available"): value = error code
                                  / errno, 0 if none; ``bus.recv`` raised: same; an error
                                  frame without the bus-off bit: value = its error class
                                  bits (SocketCAN ``CAN_ERR_*``, the arbitration id).
BUS_OFF       ``can.bus``         ``bus.state`` is ``can.BusState.ERROR`` (value 1.0), or an
                                  error frame with ``CAN_ERR_BUSOFF`` (0x40) set (value =
                                  error class bits).
TIMEOUT       ``can.<actuator>``  enabled, not in a zero-quiet window, and no valid reply for
                                  more than ``reply_timeout_s``: value = age in s, measured
                                  from the last valid reply, ``enable`` or the end of the
                                  quiet window, whichever is latest. Until the motor's first
                                  valid reply after ``enable`` the limit is
                                  ``first_reply_timeout_s`` (a drive answers its enter-mode
                                  frame late; torque is zero until then anyway).
DRIVE_ERROR   ``can.<actuator>``  a valid reply with a nonzero error code: value = the code.
MALFORMED     ``can.<actuator>``  a frame for that motor that fails ``decode_reply`` (length,
              or ``can.bus``      motor-id byte, error code outside the table); ``can.bus``
                                  for a frame on ``master_id`` whose byte 0 is no motor of
                                  ours: value = malformed frames counted for that source.
ESTOP         ``can.estop``       any frame on ``estop_can_id``: value 1.0 (never rate-limited).
============  ==================  ==========================================================

OVER_TEMPERATURE is not raised here: the reply temperature goes to ``JointStates`` and the
supervisor checks it.  Rate limits: each ``(source, kind)`` (``DRIVE_ERROR``: per code) gives
at most one fault per ``fault_interval_s`` (1 s) -- the supervisor latches the first one; all
occurrences are counted in :attr:`AkCanDrive.stats`.  TIMEOUT is edge-triggered: the first
fault comes the cycle the limit is passed, repeats at most once per ``fault_interval_s``.
The fault buffer holds the newest ``max_pending_faults`` entries (the loop polls each cycle).

Which frames are what
---------------------
* a frame on ``master_id`` (the MIT firmware answers on the host id, 0 by default): a reply,
  dispatched on byte 0 (motor id);
* a frame on a motor's own id: first compared with the last few frames we sent to that id
  -- equal means it is our own command coming back (virtual bus with
  ``receive_own_messages=True``, udp_multicast's multicast loopback, SocketCAN
  ``CAN_RAW_RECV_OWN_MSGS``) and it is skipped: not logged again (``frame_log`` has it once, as
  sent) and not counted in ``stats["frames_rx"]`` but in ``stats["echoes"]``; otherwise it is decoded
  as a reply (some firmware answers on its own id); if that fails it is MALFORMED;
* a frame on ``estop_can_id``: ESTOP;
* error frames: counted, BUS_ERROR or BUS_OFF as above;
* anything else (other ids, extended ids, remote frames): ignored, counted.

Open the bus with :func:`firmware_bridge.bus.open_bus` (re-exported here as ``open_bus``),
``receive_own_messages=False``; the echo check does not rely on it.

Zeroing: ``zero_position`` sends ``ZERO_POSITION``; the drive then sends nothing for about
1-1.5 s.  For ``zero_quiet_s`` that motor gets no TIMEOUT, its replies are not used (they
may predate the new zero), and ``read`` fills its state with NaN (temperature/error None,
``rx_ns`` 0) until the first reply after the window; ``write`` sends it the safe-stop frame
meanwhile.  NaN is deliberate: nothing may act on pre-zero positions (the supervisor's
``check_joint_state`` reports it as NAN if the loop checks states during zeroing).

Before the first reply of a motor, ``read`` leaves its entries of ``out`` untouched
(``rx_ns`` stays 0: "never received").

Imports: stdlib, python-can and this package only.
"""
from __future__ import annotations

import math
import time
from collections import deque
from typing import Any, Callable, Sequence

import can

from .ak_mit import (
    ENTER_MOTOR_MODE,
    EXIT_MOTOR_MODE,
    SPECIAL_FRAMES,
    ZERO_POSITION,
    MalformedReply,
    decode_reply,
    encode_command,
    safe_stop_command,
)
from .bus import open_bus
from .calibration import ActuatorCalibration
from .drive_interface import DriveBase, DriveResult, FaultRecord, JointStateBuffer
from .motor_tables import MitLimits
from .velocity_check import VelocityTableCheck

__all__ = [
    "AkCanDrive",
    "FAULT_KINDS",
    "CAN_ERR_BUSOFF",
    "open_bus",
]

#: Fault kinds of the drive interface (values of ``controllers.safety.FaultKind``); this module
#: emits all but OVER_TEMPERATURE, which the supervisor derives from ``JointStates.temperature_c``.
FAULT_KINDS = ("BUS_OFF", "BUS_ERROR", "TIMEOUT", "DRIVE_ERROR", "OVER_TEMPERATURE", "ESTOP", "MALFORMED")
#: SocketCAN error class bit (linux/can/error.h) in an error frame's id: controller went bus-off.
CAN_ERR_BUSOFF = 0x40
_ERR_CLASS_MASK = 0x1FFFFFFF

FrameLog = Callable[[int, int, bytes, bool, bool], None]

_NAN = math.nan
_RECENT = 8  # frames remembered per motor id for the own-echo check (power of 2)


class _Motor:
    """Per-actuator constants and state (slots: attribute access in the 500 Hz path)."""

    __slots__ = (
        "index", "cal", "name", "source", "can_id", "limits", "safe_stop", "msg",
        "tx_scale", "zero", "pos_scale", "vel_scale", "tq_scale",
        "recent", "recent_i",
        "has_state", "invalid", "quiet_until_ns", "last_rx_ns",
        "pos", "vel", "tq", "temp", "err",
        "replies_ok", "replies_quiet", "malformed", "timeouts", "timed_out", "drive_errors",
        "vc",
    )

    def __init__(self, index: int, cal: ActuatorCalibration, limits: MitLimits) -> None:
        self.index = index
        self.cal = cal
        self.name = cal.name
        self.source = f"can.{cal.name}"
        self.can_id = cal.can_id
        self.limits = limits
        self.safe_stop = safe_stop_command(limits)
        self.msg = can.Message(arbitration_id=cal.can_id, is_extended_id=False, dlc=8,
                               data=bytearray(self.safe_stop), is_rx=False)
        d, n, s = cal.direction, cal.gear_ratio, cal.wire_torque_scale
        # the formulas of calibration.py, folded into one factor each (checked in the tests)
        self.tx_scale = d * s / n          # T_mit = d*s*T_joint/N
        self.zero = float(cal.zero_offset_rad)
        self.pos_scale = d / n             # q_joint = d*(q_mit - zero)/N
        self.vel_scale = d / n             # v_joint = d*v_mit/N
        self.tq_scale = d * n / s          # T_joint = d*N*T_mit/s
        self.recent: list[bytes | None] = [None] * _RECENT
        self.recent_i = 0
        self.has_state = False
        self.invalid = False
        self.quiet_until_ns = 0
        self.last_rx_ns = 0
        self.pos = self.vel = self.tq = 0.0
        self.temp: float | None = None
        self.err: int | None = None
        self.replies_ok = self.replies_quiet = self.malformed = 0
        self.timeouts = self.drive_errors = 0
        self.timed_out = False
        self.vc = VelocityTableCheck(limits)


class AkCanDrive(DriveBase):
    """AK-series drives in MIT mode on one python-can bus, torque-only (Kp = Kd = 0).

    ``actuators[i]`` is joint ``i``.  See the module docstring for the fault mapping, the frame
    classification and the zeroing behaviour.  Extra keyword arguments (all optional):
    ``limits`` -- per-actuator :class:`MitLimits` overriding ``limits_for(model, firmware)``
    (e.g. a temperature offset of 40); ``fault_interval_s`` -- rate limit per fault source
    and kind; ``state_check_every`` -- read ``bus.state`` once per this many ``read`` calls;
    ``max_rx_per_read`` -- frames drained per ``read`` at most (a flooded bus cannot stall
    the loop); ``max_pending_faults`` -- size of the fault buffer.

    ``frame_log(t_ns, arbitration_id, data, is_rx, is_error)`` gets every frame the bus
    accepted for sending, once, ``is_rx=False`` (a send that raised is a BUS_ERROR fault, not a
    logged frame), and every frame received from others, error frames included, ``is_rx=True``,
    with ``t_ns = clock_ns()``.  Our own frames coming back (see "Which frames are what") are
    neither logged again nor counted as received: ``stats["echoes"]`` counts them apart from
    ``stats["frames_rx"]``;
    an exception in it is counted (``stats["frame_log_errors"]``), never propagated.
    One ``can.Message`` per motor is reused for its commands (data overwritten in place:
    interfaces copy or pack the message in ``send``).
    """

    def __init__(
        self,
        bus: can.BusABC,
        actuators: Sequence[ActuatorCalibration],
        *,
        reply_timeout_s: float = 0.05,
        first_reply_timeout_s: float = 0.5,
        master_id: int = 0,
        estop_can_id: int | None = None,
        zero_quiet_s: float = 1.5,
        frame_log: FrameLog | None = None,
        clock_ns: Callable[[], int] = time.monotonic_ns,
        limits: Sequence[MitLimits | None] | None = None,
        fault_interval_s: float = 1.0,
        state_check_every: int = 50,
        max_rx_per_read: int = 256,
        max_pending_faults: int = 1024,
    ) -> None:
        acts = tuple(actuators)
        if not acts:
            raise ValueError("actuators: at least one ActuatorCalibration is required")
        for a in acts:
            if not isinstance(a, ActuatorCalibration):
                raise ValueError(f"actuators: {a!r} is not an ActuatorCalibration (use from_mapping)")
        ids = [a.can_id for a in acts]
        if len(set(ids)) != len(ids):
            raise ValueError(f"actuators: can_id values {ids} must be unique")
        names = [a.name for a in acts]
        if len(set(names)) != len(names):
            raise ValueError(f"actuators: names {names} must be unique (they name fault sources)")
        if isinstance(master_id, bool) or not isinstance(master_id, int) or not 0 <= master_id <= 0x7FF:
            raise ValueError(f"master_id={master_id!r}: allowed 0..0x7FF")
        if master_id in ids:
            raise ValueError(f"master_id={master_id}: equals a motor can_id {ids}; replies would be ambiguous")
        if estop_can_id is not None:
            if isinstance(estop_can_id, bool) or not isinstance(estop_can_id, int) or not 0 <= estop_can_id <= 0x7FF:
                raise ValueError(f"estop_can_id={estop_can_id!r}: allowed None or 0..0x7FF")
            if estop_can_id == master_id or estop_can_id in ids:
                raise ValueError(f"estop_can_id={estop_can_id}: collides with master_id={master_id} or motor ids {ids}")
        for name, v, lo in (("reply_timeout_s", reply_timeout_s, 0.0), ("fault_interval_s", fault_interval_s, 0.0)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not v > lo:
                raise ValueError(f"{name}={v!r}: allowed a finite number > {lo}")
        if isinstance(zero_quiet_s, bool) or not isinstance(zero_quiet_s, (int, float)) \
                or not math.isfinite(zero_quiet_s) or zero_quiet_s < 0:
            raise ValueError(f"zero_quiet_s={zero_quiet_s!r}: allowed a finite number >= 0")
        for name, v in (("state_check_every", state_check_every), ("max_rx_per_read", max_rx_per_read),
                        ("max_pending_faults", max_pending_faults)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}={v!r}: allowed an int >= 1")
        if limits is None:
            lims = [a.limits for a in acts]
        else:
            if len(limits) != len(acts):
                raise ValueError(f"limits: {len(limits)} entries for {len(acts)} actuators")
            lims = [a.limits if lim is None else lim for a, lim in zip(acts, limits)]
            for lim in lims:
                if not isinstance(lim, MitLimits):
                    raise ValueError(f"limits: {lim!r} is not a MitLimits")

        self.bus = bus
        self.actuators = acts
        self._motors = tuple(_Motor(i, a, lim) for i, (a, lim) in enumerate(zip(acts, lims)))
        self._by_id = {m.can_id: m for m in self._motors}
        self._n = len(acts)
        self._master_id = master_id
        self._estop_id = -1 if estop_can_id is None else estop_can_id
        self._timeout_ns = int(round(reply_timeout_s * 1e9))
        if not first_reply_timeout_s >= reply_timeout_s:
            raise ValueError(f"first_reply_timeout_s = {first_reply_timeout_s!r}: must be >= reply_timeout_s "
                             f"({reply_timeout_s!r})")
        self._first_timeout_ns = int(round(first_reply_timeout_s * 1e9))
        self._quiet_ns = int(round(zero_quiet_s * 1e9))
        self._interval_ns = int(round(fault_interval_s * 1e9))
        self._frame_log = frame_log
        self._clock_ns = clock_ns
        self._state_every = state_check_every
        self._max_rx = max_rx_per_read
        self._check_state = True
        self._enabled = False
        self._enable_ns = 0
        self._reads = 0
        self._last_read_ns: int | None = None
        self._faults: deque[tuple[str, str, float, int]] = deque(maxlen=max_pending_faults)
        self._last_emit: dict[tuple, int] = {}
        # counters (stats builds the dict on demand: no dict writes in the 500 Hz path)
        self._frames_tx = 0
        self._frames_rx = 0
        self._replies_ok = 0
        self._malformed = 0
        self._malformed_bus = 0
        self._error_frames = 0
        self._send_errors = 0
        self._recv_errors = 0
        self._timeouts = 0
        self._echoes = 0
        self._ignored = 0
        self._estops = 0
        self._clamped = 0
        self._nonfinite = 0
        self._faults_suppressed = 0
        self._faults_dropped = 0
        self._frame_log_errors = 0
        self._fault_events = 0
        self._wall_minus_mono_ns = time.time_ns() - time.monotonic_ns()
        # receive stamps are used only on the real monotonic clock (an injected test clock has no wall time)
        self._real_clock = clock_ns is time.monotonic_ns
        self._rx_cap_hits = 0
        self._bus_state = "unknown"
        self.last_send_error = ""
        self.last_malformed = ""

    # ------------------------------------------------------------------ properties
    @property
    def enabled(self) -> bool:
        """True between ``enable`` and ``disable``."""
        return self._enabled

    def state_valid(self, index: int) -> bool:
        """True if actuator ``index`` has a usable state (a reply, and none pending after a zero)."""
        m = self._motors[index]
        return m.has_state and not m.invalid

    @property
    def stats(self) -> dict[str, Any]:
        """Counters (a fresh dict each call): totals, ``last_reply_age_s`` and ``per_motor`` by name."""
        t = self._last_read_ns
        ages = {}
        per = {}
        for m in self._motors:
            ages[m.name] = None if (t is None or not m.has_state) else (t - m.last_rx_ns) * 1e-9
            per[m.name] = {
                "replies_ok": m.replies_ok, "replies_ignored_quiet": m.replies_quiet,
                "malformed": m.malformed, "timeouts": m.timeouts, "drive_errors": m.drive_errors,
                "state_valid": m.has_state and not m.invalid, "velocity_samples": m.vc.n,
            }
        return {
            "frames_tx": self._frames_tx,
            "frames_rx": self._frames_rx,
            "replies_ok": self._replies_ok,
            "malformed": self._malformed,
            "malformed_bus": self._malformed_bus,
            "error_frames": self._error_frames,
            "send_errors": self._send_errors,
            "recv_errors": self._recv_errors,
            "timeouts": self._timeouts,
            "echoes": self._echoes,
            "ignored": self._ignored,
            "estops": self._estops,
            "clamped_commands": self._clamped,
            "nonfinite_commands": self._nonfinite,
            "faults_suppressed": self._faults_suppressed,
            "faults_dropped": self._faults_dropped,
            "frame_log_errors": self._frame_log_errors,
            "rx_cap_hits": self._rx_cap_hits,
            "bus_state": self._bus_state,
            "last_reply_age_s": ages,
            "per_motor": per,
        }

    # ------------------------------------------------------------------ faults
    def _emit(self, source: str, kind: str, value: float, t_ns: int, key: Any = None, force: bool = False) -> None:
        self._fault_events += 1  # suppressed ones included: read() returns ERROR for this cycle
        k = (source, kind) if key is None else key
        if not force:
            last = self._last_emit.get(k)
            if last is not None and t_ns - last < self._interval_ns:
                self._faults_suppressed += 1
                return
        self._last_emit[k] = t_ns
        if len(self._faults) == self._faults.maxlen:
            self._faults_dropped += 1  # deque drops the oldest
        self._faults.append((source, kind, float(value), t_ns))

    def poll_faults(self) -> list[FaultRecord]:
        """Faults ``(source, kind, value, t_ns)`` recorded since the last call, oldest first."""
        if not self._faults:
            return []
        out = list(self._faults)
        self._faults.clear()
        return out

    def _bus_exception(self, exc: BaseException, t_ns: int) -> None:
        code = getattr(exc, "error_code", None)
        if code is None:
            code = getattr(exc, "errno", None)
        try:
            value = float(code) if code is not None else 0.0
        except (TypeError, ValueError):
            value = 0.0
        self._emit("can.bus", "BUS_ERROR", value, t_ns)

    # ------------------------------------------------------------------ tx
    def _send(self, m: _Motor, data: bytes, t_ns: int) -> bool:
        msg = m.msg
        msg.data[:] = data
        try:
            self.bus.send(msg)
        except (can.CanError, OSError) as exc:
            self._send_errors += 1
            self.last_send_error = f"{type(exc).__name__}: {exc}"
            self._bus_exception(exc, t_ns)
            return False
        self._frames_tx += 1
        i = m.recent_i
        m.recent[i] = data
        m.recent_i = (i + 1) & (_RECENT - 1)
        log = self._frame_log
        if log is not None:
            try:
                log(self._clock_ns(), m.can_id, data, False, False)
            except Exception:  # a logging problem must not stop the torque path
                self._frame_log_errors += 1
        return True

    def enable(self, t_ns: int) -> None:
        """Per motor: safe-stop command (Kp = Kd = 0, zero torque), then ENTER_MOTOR_MODE."""
        for m in self._motors:
            self._send(m, m.safe_stop, t_ns)
            self._send(m, ENTER_MOTOR_MODE, t_ns)
            m.timed_out = False
        self._enabled = True
        self._enable_ns = t_ns

    def disable(self, t_ns: int) -> None:
        """Per motor: safe-stop command, then EXIT_MOTOR_MODE (nothing stays latched)."""
        for m in self._motors:
            self._send(m, m.safe_stop, t_ns)
            self._send(m, EXIT_MOTOR_MODE, t_ns)
        self._enabled = False

    def zero_position(self, index: int, t_ns: int, *, zero_offset_rad: float | None = None) -> None:
        """Send ZERO_POSITION to actuator ``index``; its state is invalid until the first reply
        after ``zero_quiet_s``.  ``zero_offset_rad``: the MIT position of the joint zero to use
        from now on (0.0 when the joint is at its zero pose while zeroing); None keeps the
        calibration's value, which is only right if it was measured after such a zeroing."""
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < self._n:
            raise ValueError(f"index={index!r}: allowed 0..{self._n - 1}")
        m = self._motors[index]
        if zero_offset_rad is not None:
            if not math.isfinite(zero_offset_rad) or not m.limits.p_min <= zero_offset_rad <= m.limits.p_max:
                raise ValueError(f"zero_offset_rad={zero_offset_rad!r}: allowed "
                                 f"[{m.limits.p_min}, {m.limits.p_max}] rad")
            m.zero = float(zero_offset_rad)
        m.invalid = True
        m.timed_out = False
        m.quiet_until_ns = t_ns + self._quiet_ns
        m.vc.restart()
        self._send(m, ZERO_POSITION, t_ns)

    def write(self, torque_nm: Sequence[float], t_ns: int) -> DriveResult:
        """One MIT command per motor: P = V = 0, Kp = Kd = 0, T_ff from the joint torque.

        While disabled, or while a motor's state is invalid after a zero, that motor gets the
        safe-stop frame instead.  A non-finite torque sends safe-stop (counted); out-of-range
        torques are clamped by the codec (counted).  Never raises for bus problems.
        Returns ``ERROR`` if a send failed (a BUS_ERROR fault) or a torque was non-finite,
        else ``OK``."""
        if len(torque_nm) != self._n:
            raise ValueError(f"torque_nm has {len(torque_nm)} values for {self._n} actuators")
        enabled = self._enabled
        ok = True
        for m in self._motors:
            if enabled and not m.invalid:
                try:
                    enc = encode_command(m.limits, 0.0, 0.0, 0.0, 0.0, torque_nm[m.index] * m.tx_scale)
                except (ValueError, TypeError):
                    self._nonfinite += 1
                    data = m.safe_stop
                    ok = False
                else:
                    data = enc.data
                    if enc.clamped:
                        self._clamped += 1
            else:
                data = m.safe_stop
            if not self._send(m, data, t_ns):
                ok = False
        return DriveResult.OK if ok else DriveResult.ERROR

    # ------------------------------------------------------------------ rx
    def read(self, out: JointStateBuffer, t_ns: int) -> DriveResult:
        """Drain the bus (``recv(timeout=0)`` until None), decode, check timeouts and bus state,
        then fill ``out`` (a ``JointStates``) joint side.  Never raises for bus problems.

        ``out.rx_ns[i]`` is the ``t_ns`` of the ``read`` that received motor i's newest valid
        reply (0: none yet, or none since a zero); entries of a motor without a new reply
        keep their values.  Returns ``DEACTIVATE`` if an e-stop frame came in, else ``ERROR``
        if any fault arose in this call (rate-limited repeats included: a motor that stays
        timed out gives ``ERROR`` every cycle), else ``OK``."""
        faults0 = self._fault_events
        estops0 = self._estops
        self._reads += 1
        self._last_read_ns = t_ns
        if self._frame_log is not None:
            # kernel receive stamps (msg.timestamp) are wall clock: map them onto the monotonic clock
            self._wall_minus_mono_ns = time.time_ns() - self._clock_ns()
        bus = self.bus
        handle = self._handle
        n = 0
        cap = self._max_rx
        while True:
            if n >= cap:
                self._rx_cap_hits += 1
                break
            try:
                msg = bus.recv(0.0)
            except (can.CanError, OSError) as exc:
                self._recv_errors += 1
                self._bus_exception(exc, t_ns)
                break
            if msg is None:
                break
            n += 1
            handle(msg, t_ns)
        if self._check_state and (self._reads - 1) % self._state_every == 0:
            self._poll_bus_state(t_ns)
        enabled = self._enabled
        tmo = self._timeout_ns
        for m in self._motors:
            i = m.index
            if enabled and t_ns >= m.quiet_until_ns:
                base = m.last_rx_ns
                if self._enable_ns > base:
                    base = self._enable_ns
                if m.quiet_until_ns > base:
                    base = m.quiet_until_ns
                age = t_ns - base
                if age > (tmo if m.last_rx_ns > self._enable_ns else self._first_timeout_ns):
                    if not m.timed_out:
                        m.timed_out = True
                        m.timeouts += 1
                        self._timeouts += 1
                        self._emit(m.source, "TIMEOUT", age * 1e-9, t_ns, force=True)
                    else:
                        self._emit(m.source, "TIMEOUT", age * 1e-9, t_ns)
            if m.invalid:
                out.position_rad[i] = _NAN
                out.velocity_rad_s[i] = _NAN
                out.torque_nm[i] = _NAN
                out.temperature_c[i] = None
                out.error_code[i] = None
                out.rx_ns[i] = 0
            elif m.has_state:
                out.position_rad[i] = m.pos
                out.velocity_rad_s[i] = m.vel
                out.torque_nm[i] = m.tq
                out.temperature_c[i] = m.temp
                out.error_code[i] = m.err
                out.rx_ns[i] = m.last_rx_ns
        if self._estops != estops0:
            return DriveResult.DEACTIVATE
        return DriveResult.OK if self._fault_events == faults0 else DriveResult.ERROR

    def _poll_bus_state(self, t_ns: int) -> None:
        try:
            st = self.bus.state
        except NotImplementedError:
            self._check_state = False
            self._bus_state = "not_implemented"
            return
        except (can.CanError, OSError) as exc:
            self._bus_exception(exc, t_ns)
            return
        except Exception as exc:  # an interface's own failure: report once, stop asking
            self._check_state = False
            self._bus_state = f"unavailable ({type(exc).__name__})"
            self._bus_exception(exc, t_ns)
            return
        self._bus_state = getattr(st, "name", str(st))
        if st is can.BusState.ERROR:
            self._emit("can.bus", "BUS_OFF", 1.0, t_ns)

    def _handle(self, msg: can.Message, t_ns: int) -> None:
        aid = msg.arbitration_id
        data = msg.data
        m = self._by_id.get(aid)
        if (m is not None and len(data) == 8 and data in m.recent and not msg.is_error_frame
                and not msg.is_extended_id and not msg.is_remote_frame):
            # our own command coming back (python-can marks it is_rx=False on virtual/SocketCAN with
            # receive_own_messages; udp_multicast's loopback marks it is_rx=True): logged once, as sent
            self._echoes += 1
            return
        self._frames_rx += 1
        log = self._frame_log
        if log is not None:
            try:
                now = self._clock_ns()
                ts = msg.timestamp
                # arrival time from the interface's receive stamp when it has one, else now
                t_rx = min(now, int(ts * 1e9) - self._wall_minus_mono_ns) if ts and self._real_clock else now
                log(t_rx, aid, bytes(data), True, msg.is_error_frame)
            except Exception:
                self._frame_log_errors += 1
        if msg.is_error_frame:
            self._error_frames += 1
            cls = aid & _ERR_CLASS_MASK
            if cls & CAN_ERR_BUSOFF:
                self._emit("can.bus", "BUS_OFF", float(cls), t_ns)
            else:
                self._emit("can.bus", "BUS_ERROR", float(cls), t_ns)
            return
        if msg.is_extended_id or msg.is_remote_frame:
            self._ignored += 1
            return
        if aid == self._master_id:
            if not data:
                self._malformed_frame(None, "reply with no data", t_ns)
                return
            m = self._by_id.get(data[0])
            if m is None:
                self._malformed_frame(None, f"reply on master id 0x{aid:03X} for motor id {data[0]}: "
                                            f"allowed {sorted(self._by_id)}", t_ns)
                return
            self._reply(m, aid, data, t_ns)
            return
        if m is not None:
            self._reply(m, aid, data, t_ns)
            return
        if aid == self._estop_id:
            self._estops += 1
            self._emit("can.estop", "ESTOP", 1.0, t_ns, force=True)
            return
        self._ignored += 1

    def _malformed_frame(self, m: _Motor | None, why: str, t_ns: int) -> None:
        self._malformed += 1
        self.last_malformed = why
        if m is None:
            self._malformed_bus += 1
            self._emit("can.bus", "MALFORMED", float(self._malformed_bus), t_ns)
        else:
            m.malformed += 1
            self._emit(m.source, "MALFORMED", float(m.malformed), t_ns)

    def _reply(self, m: _Motor, aid: int, data: bytearray, t_ns: int) -> None:
        try:
            r = decode_reply(m.limits, data, m.can_id, arbitration_id=aid, master_id=self._master_id)
        except MalformedReply as exc:
            kind = SPECIAL_FRAMES.get(bytes(data))
            why = f"{m.name}: {exc}" if kind is None else f"{m.name}: foreign {kind} frame on motor id 0x{aid:03X}"
            self._malformed_frame(m, why, t_ns)
            return
        m.replies_ok += 1
        self._replies_ok += 1
        code = r.error_code
        if code:
            m.drive_errors += 1
            self._emit(m.source, "DRIVE_ERROR", float(code), t_ns, key=(m.source, code))
        if t_ns < m.quiet_until_ns:
            m.replies_quiet += 1  # may predate the new zero: not used
            return
        p = r.position_rad
        v = r.velocity_rad_s
        m.vc.add(t_ns, p, v)  # velocity-table check: reported velocity vs the derivative of reported position
        # joint side
        m.pos = m.pos_scale * (p - m.zero)
        m.vel = m.vel_scale * v
        m.tq = m.tq_scale * r.torque_nm
        m.temp = r.temperature_c
        m.err = code
        m.last_rx_ns = t_ns
        m.has_state = True
        m.invalid = False
        m.timed_out = False

    # ------------------------------------------------------------------ checks
    def velocity_check(self, *, min_samples: int = 50, tolerance: float = 0.05) -> tuple[bool, str]:
        """Reported velocity vs the derivative of reported position, per motor, MIT frame
        (:class:`~firmware_bridge.velocity_check.VelocityTableCheck`).

        Median ratio ``r`` of ``dp`` (successive reply positions) over ``v_avg*dt``
        (mean of the two reported velocities times the time between the reads that
        received them), over every pair seen so far while moving smoothly (|v| >= 5 velocity
        quanta, velocity change between the two replies at most 25 %, no position wrap or
        saturation, regular reply spacing).  ``r`` is 1 with the
        right table; a wrong velocity range shows as ``r = true_range / table_range``
        (e.g. 1.14 for AK80-9 V2 replies read with the V1.1 table, 2.22 for a +/-50 table
        read as +/-22.5).  Returns ``(ok, text)``: ok only if every motor has at least
        ``min_samples`` pairs and ``|r - 1| <= tolerance``; too little motion is not ok
        ("inconclusive").
        """
        ok = True
        parts = []
        for m in self._motors:
            m_ok, text = m.vc.verdict(m.name, min_samples=min_samples, tolerance=tolerance)
            ok = ok and m_ok
            parts.append(text)
        return ok, "; ".join(parts)

    def reset_velocity_check(self) -> None:
        """Forget the pairs collected so far (e.g. after changing tables)."""
        for m in self._motors:
            m.vc.reset()

    def _release(self) -> None:
        """Shut the bus down (``close``, the end of a ``with`` block: after ``disable`` if enabled)."""
        try:
            self.bus.shutdown()
        except (can.CanError, OSError):
            pass

