"""Managed (lifecycle) rclpy nodes: thin adapters over the runtime.

=============  ==========================================================================  ==========================
node kind      what it wraps                                                               publishes
=============  ==========================================================================  ==========================
vision         a frame source + the Anonymiser (``runtime.vision``); images only as        /exo/camera/image_anonymized
               :class:`AnonymizedFrame` through :class:`AnonymizedImagePublisher`
estimator      the runtime pipeline's capture + gait-phase stages (``runtime.pipeline.stages``)   /exo/estimation/gait_phase
assistance     ``controllers.phase_profile.PhaseProfileController``                        /exo/assistance/request
safety         ``controllers.safety.SafetySupervisor`` with the device file's limits       /exo/torque/command, /wrench,
                                                                                           /exo/safety/state, /diagnostics
can_bridge     ``runtime.control.drive.make_drive`` (sim, virtual, udp_multicast, socketcan) and   /exo/joint_states, /diagnostics
               its own supervisor as a watchdog on the incoming command
replay         a telemetry log (``runtime.telemetry.read``, encrypted logs too)            the logged standard topics
=============  ==========================================================================  ==========================

Lifecycle: parameters and configuration files are read in ``on_configure``; only ACTIVE emits
torque. The safety node's ``on_deactivate`` calls ``SafetySupervisor.deactivate`` and keeps
its timer running, so the command ramps to exactly zero within the device's ``fade_time_s``
and then stays zero (commands keep flowing as zeros: drives expect a steady stream). A
fault latches in the supervisor: torque fades and stays zero until ``/exo/safety/reset`` and a
new activation. The CAN bridge runs its own supervisor on the received command, so a safety
node that dies or a lost topic fades the drive to zero after ``stale_after_s`` as well.

Timing: rclpy timers are not real-time (Python, GIL, executor): the ROS 2 graph is the
integration and observation surface; the deadline-bound torque path is ``exo run``'s
two-process loop. Stamps are the node clock (system time); supervisor times are monotonic.
A torque command's stamp is read before the supervisor's time of that tick and the reported
fade start after the supervisor's, so every command stamped at or after
``fade_start_ns + fade_time_s`` is exactly zero, however late the executor runs the timer.
"""
from __future__ import annotations

import importlib
import math
import time
from pathlib import Path
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import WrenchStamped
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Empty, Float64, String

from controllers.safety import Fault, FaultKind, SafetyState, fault_kind
from firmware_bridge.drive_interface import DriveResult
from runtime.ros2 import topics
from runtime.ros2.description import PARAMETERS

SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE
_PKG_CONFIG = Path(__file__).resolve().parents[2] / "launch" / "config"
_LEVEL = {SafetyState.INACTIVE: DiagnosticStatus.OK, SafetyState.ACTIVE: DiagnosticStatus.OK,
          SafetyState.FADING: DiagnosticStatus.WARN, SafetyState.FAULTED: DiagnosticStatus.ERROR}
#: DiagnosticStatus.hardware_id of statuses that carry a fault for the safety node.
FAULT_HARDWARE_ID = "exo_fault"


def _mono_ns() -> int:
    return time.monotonic_ns()


def _capture_ns(stamp, rx_ns: int, wall_ns: int) -> int:
    """A message's header stamp (node clock) as a monotonic capture time, given its reception ``rx_ns``
    (monotonic) and the node clock ``wall_ns`` now; never later than ``rx_ns``. An unstamped message (0) has no
    known capture time: 0, so the cycle counts it stale, like a torque-loop command with capture_ns 0."""
    stamp_ns = stamp.sec * 1_000_000_000 + stamp.nanosec
    if stamp_ns <= 0:
        return 0
    return min(rx_ns - (wall_ns - stamp_ns), rx_ns)


class ExoLifecycleNode(LifecycleNode):
    """Common base: typed parameters from the kind's table, configuration files, clock helpers."""

    KIND = ""

    def __init__(self, name: str, parameters: dict[str, Any] | None = None) -> None:
        overrides = [Parameter(k, value=v) for k, v in (parameters or {}).items()]
        super().__init__(name, parameter_overrides=overrides)
        for key in ("device_config", "subject_config", "calibration_config"):
            self.declare_parameter(key, "")
        for key, (typ, _rng, default) in PARAMETERS[self.KIND].items():
            if default is None:
                default = {float: math.nan, int: -1, str: "", bool: False}[typ]
            self.declare_parameter(key, default)
        self.device = self.subject = self.calibration = None
        self.configured = False

    def param(self, key: str) -> Any:
        return self.get_parameter(key).value

    def param_or(self, key: str, fallback: Any) -> Any:
        """The parameter, or *fallback* when it was left to the configuration files."""
        v = self.param(key)
        return fallback if v is None or (isinstance(v, float) and math.isnan(v)) or v == "" else v

    def load_configs(self) -> None:
        from runtime.core.config import check_consistency, load_calibration, load_device, load_subject

        def path(key: str, default: str) -> str:
            return self.param_or(f"{key}_config", str(_PKG_CONFIG / default))

        self.device = load_device(path("device", "device.yaml"))
        self.subject = load_subject(path("subject", "subject.yaml"))
        self.calibration = load_calibration(path("calibration", "calibration.yaml"))
        check_consistency(self.device, self.calibration)

    def stamp_now(self):
        return self.get_clock().now().to_msg()

    def wall_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.load_configs()
            self.setup()
        except Exception as exc:  # a bad file or value: refuse the transition and say why
            self.get_logger().error(f"configure failed: {type(exc).__name__}: {exc}")
            return FAILURE
        self.configured = True
        return SUCCESS

    #: True while the node is ACTIVE (a node acts only then; subclasses add their own transition work)
    active = False

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.active = True
        return SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.active = False
        return SUCCESS

    def setup(self) -> None:
        """Create publishers, subscriptions and timers (called by on_configure)."""

    def teardown(self) -> None:
        """Destroy what setup() created (called by on_cleanup/on_shutdown)."""

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.teardown()
        self.configured = False
        return SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self.configured:
            self.teardown()
            self.configured = False
        return SUCCESS


def latched_qos():
    """Keep-last 1, reliable, transient-local: late subscribers get the current value."""
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


def lifecycle_label(node: LifecycleNode) -> str:
    """The node's primary lifecycle state: 'unconfigured', 'inactive', 'active' or 'finalized'."""
    return str(node._state_machine.current_state[1])   # what rclpy's own trigger_shutdown reads


def message_class(msgtype: str) -> type:
    """The rclpy message class of a ROS 2 type name ``pkg/msg/Name`` (ImportError if not installed)."""
    parts = msgtype.split("/")
    if len(parts) != 3 or parts[1] != "msg":
        raise ValueError(f"message type {msgtype!r}: expected 'package/msg/Name'")
    return getattr(importlib.import_module(f"{parts[0]}.msg"), parts[2])


def _joint_state(stamp, names: list[str], position=(), velocity=(), effort=()) -> JointState:
    msg = JointState()
    msg.header.stamp = stamp
    msg.name = list(names)
    msg.position = [float(x) for x in position]
    msg.velocity = [float(x) for x in velocity]
    msg.effort = [float(x) for x in effort]
    return msg


class EstimatorNode(ExoLifecycleNode):
    """Runs the estimation pipeline's capture and gait-phase stages at ``rate_hz``; publishes the phase while ACTIVE."""

    KIND = "estimator"

    def setup(self) -> None:
        from controllers.phase_profile import CadencePhaseEstimator
        from runtime.pipeline.stages import GaitPhaseStage, Pipeline, SyntheticCapture

        rate = float(self.param_or("rate_hz", self.device.estimation.rate_hz))
        self.pipeline = Pipeline([SyntheticCapture(_mono_ns),
                                  GaitPhaseStage(CadencePhaseEstimator(float(self.param("cadence_hz")), _mono_ns()))],
                                 len(self.device.joints), _mono_ns,
                                 "synthetic capture -> time-based gait phase (vision stages not in this node set)")
        self.stage_s: dict[str, float] = {}
        self.pub = self.create_publisher(Float64, topics.GAIT_PHASE, 10)
        self.active = False
        self.cycle = 0
        self.timer = self.create_timer(1.0 / rate, self._tick)
        self.get_logger().info(f"estimator: {self.pipeline.description}, {rate:g} Hz")

    def teardown(self) -> None:
        self.destroy_timer(self.timer)
        self.destroy_publisher(self.pub)

    def _tick(self) -> None:
        if not self.active:
            return
        frame = self.pipeline.step(self.cycle, self.stage_s.__setitem__)
        self.cycle += 1
        self.pub.publish(Float64(data=float(frame.gait_phase)))


class AssistanceNode(ExoLifecycleNode):
    """Knee assistance from the gait phase (fixed phase profile); publishes the request while ACTIVE."""

    KIND = "assistance"

    def setup(self) -> None:
        from controllers.phase_profile import PhaseProfileController, PhaseProfileParams

        level = float(self.param_or("assistance_level", self.subject.assistance_level))
        self.controller = PhaseProfileController(PhaseProfileParams(peak_nm=float(self.param("peak_nm"))), level)
        self.names = [j.name for j in self.device.joints]
        self.active = False
        self.pub = self.create_publisher(JointState, topics.ASSISTANCE_REQUEST, 10)
        self.sub = self.create_subscription(Float64, topics.GAIT_PHASE, self._on_phase, 10)

    def teardown(self) -> None:
        self.destroy_subscription(self.sub)
        self.destroy_publisher(self.pub)

    def _on_phase(self, msg: Float64) -> None:
        if not self.active:
            return
        tau = self.controller.torque_nm(float(msg.data))
        self.pub.publish(_joint_state(self.stamp_now(), self.names, effort=[tau] * len(self.names)))


class SafetyNode(ExoLifecycleNode):
    """The safety supervisor on the ROS 2 graph: requested -> limited, slewed, faded commanded torque."""

    KIND = "safety"

    def setup(self) -> None:
        self._setup_cycle(float(self.param_or("rate_hz", self.device.torque_loop.rate_hz)))
        n = len(self.names)
        self._last_state: SafetyState | None = None
        self._diag_every = max(1, int(round(self.rate_hz / float(self.param("diagnostics_hz")))))
        self._ticks = 0
        self.pub_cmd = self.create_publisher(JointState, topics.TORQUE_COMMAND, 50)
        self.pub_wrench = self.create_publisher(WrenchStamped, topics.TORQUE_WRENCH, 50)
        self.pub_state = self.create_publisher(String, topics.SAFETY_STATE, latched_qos())
        self.pub_diag = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, 10)
        self.subs = [self.create_subscription(JointState, topics.ASSISTANCE_REQUEST, self._on_request, 10),
                     self.create_subscription(JointState, topics.JOINT_STATES, self._on_joint_states, 10),
                     self.create_subscription(Empty, topics.SAFETY_RESET, self._on_reset, 10),
                     self.create_subscription(Bool, topics.SAFETY_ESTOP, self._on_estop, 10),
                     self.create_subscription(DiagnosticArray, topics.DIAGNOSTICS, self._on_diagnostics, 50)]
        self.timer = self.create_timer(1.0 / self.rate_hz, self._tick)
        self.get_logger().info(f"safety: {n} joint(s), {self.rate_hz:g} Hz, fade {self.device.safety.fade_time_s:g} s, "
                               f"stale after {self.device.torque_loop.stale_after_s:g} s from capture, tissue "
                               f"compensation {'on' if self.cycle.compensator is not None else 'off'}")

    def _setup_cycle(self, rate_hz: float, interpolation: str | None = None) -> None:
        """The torque cycle and the inputs' state (no rclpy: the cycle test builds a node with only this).
        ValueError when tissue compensation is on and its artifact is missing or of another version."""
        from collections import deque

        from runtime.wiring import torque_cycle_from

        self.rate_hz = rate_hz
        self.names = [j.name for j in self.device.joints]
        self.cycle = torque_cycle_from(self.device, interpolation=interpolation, rate_hz=rate_hz)
        self.sup = self.cycle.supervisor
        self.requested = self.cycle.requested
        self.commanded = self.cycle.commanded
        self._req_in = [0.0] * len(self.names)
        self._knee_joint = self.cycle.params.compensated_joint
        self._frames = 0
        self.req_rx_ns = 0
        self.activated_ns = 0
        self.armed = False
        self.fade_start_wall_ns = 0
        self.estop = False
        self._joint_msgs: deque[tuple[int, float, float]] = deque()

    def teardown(self) -> None:
        self.destroy_timer(self.timer)
        for s in self.subs:
            self.destroy_subscription(s)
        for p in (self.pub_cmd, self.pub_wrench, self.pub_state, self.pub_diag):
            self.destroy_publisher(p)

    # lifecycle -> supervisor. As in the torque loop, the supervisor is activated by the first
    # request that arrives after the lifecycle activation (a node started before its input is
    # not a stale input); from then on the staleness watchdog runs.
    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self.sup.latched or self.sup.state is not SafetyState.INACTIVE:
            self.get_logger().error(f"activate refused: supervisor {self.sup.state.value}, latched "
                                    f"{[f'{f.source}:{f.kind.value}' for f in self.sup.latched]} (reset on "
                                    f"{topics.SAFETY_RESET} once torque is zero)")
            return FAILURE
        self.activated_ns = _mono_ns()
        self.armed = True
        return SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.armed = False
        fading = self.sup.state is SafetyState.ACTIVE
        self.sup.deactivate(_mono_ns(), "lifecycle deactivate")
        if fading:   # read after the supervisor's monotonic start: a stamp >= this + fade_time is past the fade
            self.fade_start_wall_ns = self.wall_ns()
        self._publish_diagnostics()
        return SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        if not self.sup.fade_complete:
            self.get_logger().error("cleanup refused: torque is still fading to zero")
            return FAILURE
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self.configured and self.sup.state is SafetyState.ACTIVE:
            # No timer after shutdown to finish a fade: the CAN bridge's watchdog fades on the silence.
            self.sup.report_fault(Fault("lifecycle", FaultKind.PARENT_LOST, 0.0, _mono_ns()))
        return super().on_shutdown(state)

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self.configured:
            self.sup.report_fault(Fault("lifecycle", FaultKind.CONFIG, 0.0, _mono_ns()))
        return SUCCESS

    # inputs
    def _on_request(self, msg: JointState) -> None:
        """A request: per-joint effort (N*m); its header stamp is taken as the capture time (node clock, turned
        monotonic with the offset now); the assisted joint's position, when given, as the knee angle (rad)."""
        rx = _mono_ns()
        knee = math.nan
        for i, (name, tau) in enumerate(zip(msg.name, msg.effort)):
            if name in self.names:
                j = self.names.index(name)
                self._req_in[j] = float(tau)
                if j == self._knee_joint and i < len(msg.position):
                    knee = float(msg.position[i])
        self._take_request(self._req_in, _capture_ns(msg.header.stamp, rx, self.wall_ns()), rx, knee)

    def _take_request(self, torque_nm: list[float], capture_ns: int, rx_ns: int, knee_rad: float = math.nan) -> None:
        """A request into the cycle: torque (N*m), its capture and reception times (monotonic ns)."""
        self._frames += 1
        self.cycle.new_command(self._frames, capture_ns, rx_ns, torque_nm, knee_rad)
        self.req_rx_ns = rx_ns

    def _on_joint_states(self, msg: JointState) -> None:
        for i, name in enumerate(msg.name):
            if name in self.names and i < len(msg.position) and i < len(msg.velocity):
                self._joint_msgs.append((self.names.index(name), float(msg.position[i]), float(msg.velocity[i])))

    def _on_reset(self, _msg: Empty) -> None:
        self.estop = False
        self.sup.reset_faults(_mono_ns(), "operator (/exo/safety/reset)")

    def _on_estop(self, msg: Bool) -> None:
        if msg.data:
            self.estop = True

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        now = _mono_ns()
        for st in msg.status:
            if st.hardware_id == FAULT_HARDWARE_ID and st.level == DiagnosticStatus.ERROR:
                vals = {kv.key: kv.value for kv in st.values}
                kind = fault_kind(vals.get("kind", "BUS_ERROR"))
                try:
                    value = float(vals.get("value", "nan"))
                except ValueError:
                    value = math.nan
                self.sup.report_fault(Fault(st.name, kind, value, now))

    # the command path
    def _cycle_step(self, now: int) -> bool:
        """One torque cycle at ``now`` (monotonic ns; no rclpy): e-stop, activation by the first request after the
        lifecycle activation, then ``controllers.torque_cycle.TorqueCycle`` (interpolation, staleness from capture,
        joint checks, tissue compensation, supervisor) into ``self.commanded``. True when it left ACTIVE."""
        sup, cyc = self.sup, self.cycle
        if self.estop:
            sup.report_fault(Fault("operator", FaultKind.ESTOP, 1.0, now))
        cyc.interpolate(now)
        if self.armed and sup.state is SafetyState.INACTIVE and self.req_rx_ns > self.activated_ns:
            self.armed = not sup.activate(now)
        cyc.check_age(now)
        while self._joint_msgs:
            i, pos, vel = self._joint_msgs.popleft()
            cyc.observe_joint(i, pos, vel, now)
        was_active = sup.state is SafetyState.ACTIVE
        cyc.step(now)
        return was_active and sup.state is not SafetyState.ACTIVE

    def _tick(self) -> None:
        stamp = self.stamp_now()        # before the monotonic time the supervisor uses (see on_deactivate)
        sup = self.sup
        if self._cycle_step(_mono_ns()):
            self.fade_start_wall_ns = self.wall_ns()
        self.pub_cmd.publish(_joint_state(stamp, self.names, effort=self.commanded))
        for name, tau in zip(self.names, self.commanded):
            w = WrenchStamped()
            w.header.stamp = stamp
            w.header.frame_id = name
            w.wrench.torque.z = float(tau)
            self.pub_wrench.publish(w)
        self._ticks += 1
        if sup.state is not self._last_state:
            self._last_state = sup.state
            self.pub_state.publish(String(data=sup.state.value))
            self._publish_diagnostics()
        elif self._ticks % self._diag_every == 0:
            self._publish_diagnostics()

    def _publish_diagnostics(self) -> None:
        sup = self.sup
        st = DiagnosticStatus(level=_LEVEL[sup.state], name=f"{self.get_name()}: safety supervisor",
                              message=sup.state.value, hardware_id="exo_safety")
        st.values = [KeyValue(key="state", value=sup.state.value),
                     KeyValue(key="fade_gain", value=f"{sup.fade_gain:.6g}"),
                     KeyValue(key="fade_time_s", value=f"{sup.params.fade_time_s:g}"),
                     KeyValue(key="fade_start_ns", value=str(self.fade_start_wall_ns)),
                     KeyValue(key="commanded_nm", value=" ".join(f"{c:.6g}" for c in self.commanded)),
                     KeyValue(key="latched", value="; ".join(f"{f.source}:{f.kind.value}={f.value:.4g}"
                                                             for f in sup.latched))]
        arr = DiagnosticArray()
        arr.header.stamp = self.stamp_now()
        arr.status = [st]
        self.pub_diag.publish(arr)


class CanBridgeNode(ExoLifecycleNode):
    """Commanded torque -> the drive (``runtime.control.drive``); measured joint states back; drive faults as diagnostics."""

    KIND = "can_bridge"

    def setup(self) -> None:
        from runtime.wiring import make_drive

        dev = self.device
        stale = float(self.param_or("stale_after_s", dev.torque_loop.stale_after_s))
        drive = make_drive(dev, self.calibration.model_dump(mode="json"), self.subject.mass_kg, self.subject.height_m)
        self._setup_cycle(float(self.param_or("rate_hz", dev.torque_loop.rate_hz)), stale, drive)
        self.pub_js = self.create_publisher(JointState, topics.JOINT_STATES, 50)
        self.pub_diag = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, 10)
        self.sub = self.create_subscription(JointState, topics.TORQUE_COMMAND, self._on_command, 50)
        self.timer = self.create_timer(1.0 / self.rate_hz, self._tick)
        self.get_logger().info(f"can_bridge: bus {dev.bus.interface} {dev.bus.channel}, {self.rate_hz:g} Hz, "
                               f"watchdog fades after {stale:g} s without commands")

    def _setup_cycle(self, rate_hz: float, stale_after_s: float, drive, interpolation: str = "hold") -> None:
        """The watchdog's torque cycle and the inputs' state (no rclpy: the cycle test builds a node with only
        this). The input is the safety node's loop-rate command, so it is held (``hold``), not interpolated;
        the tissue compensation is the safety node's, never applied twice."""
        from runtime.control.drive import JointStates
        from runtime.wiring import torque_cycle_from

        self.rate_hz = rate_hz
        self.names = [j.name for j in self.device.joints]
        n = len(self.names)
        self.cycle = torque_cycle_from(self.device, interpolation=interpolation, stale_after_s=stale_after_s,
                                       rate_hz=rate_hz, compensate=False)
        self.watchdog = self.cycle.supervisor
        self.drive = drive
        self.poll_faults = drive.poll_faults
        self.states = JointStates.zeros(n)
        self.cmd_in = [0.0] * n
        self.out = self.cycle.commanded
        self._sources = [f"drive.{name}" for name in self.names]
        self._frames = 0
        self.cmd_rx_ns = 0
        self.activated_ns = 0
        self.armed = False
        self.enabled = False
        self.active = False

    def teardown(self) -> None:
        now = _mono_ns()
        if self.enabled:
            self.drive.write([0.0] * len(self.names), now)
            self.drive.disable(now)
            self.enabled = False
        self.drive.close()              # releases the CAN bus
        self.destroy_timer(self.timer)
        self.destroy_subscription(self.sub)
        self.destroy_publisher(self.pub_js)
        self.destroy_publisher(self.pub_diag)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        now = _mono_ns()
        if self.watchdog.latched and not self.watchdog.reset_faults(now, "lifecycle activate"):
            return FAILURE
        if self.watchdog.state is not SafetyState.INACTIVE:
            self.get_logger().error(f"activate refused: watchdog {self.watchdog.state.value}")
            return FAILURE
        self.drive.enable(now)          # sends zero first, then enters the control mode
        self.enabled = True
        self.activated_ns = now
        self.armed = True               # the watchdog activates with the first command after this
        self.active = True
        return SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.active = False
        self.armed = False
        self.watchdog.deactivate(_mono_ns(), "lifecycle deactivate")   # the timer finishes the fade, then disables
        return SUCCESS

    def _on_command(self, msg: JointState) -> None:
        """A command: per-joint effort (N*m); its header stamp (the safety node's tick) as its capture time."""
        rx = _mono_ns()
        for name, tau in zip(msg.name, msg.effort):
            if name in self.names:
                self.cmd_in[self.names.index(name)] = float(tau)
        self._take_command(self.cmd_in, _capture_ns(msg.header.stamp, rx, self.wall_ns()), rx)

    def _take_command(self, torque_nm: list[float], capture_ns: int, rx_ns: int) -> None:
        """A command into the cycle: torque (N*m), its capture and reception times (monotonic ns)."""
        self._frames += 1
        self.cycle.new_command(self._frames, capture_ns, rx_ns, torque_nm)
        self.cmd_rx_ns = rx_ns

    def _cycle_step(self, now: int) -> list:
        """One cycle at ``now`` (monotonic ns; no rclpy): activation by the first command after the lifecycle
        activation, the drive's state and faults, then ``controllers.torque_cycle.TorqueCycle`` (staleness from
        capture, joint checks, supervisor) and the drive write. Returns the drive's faults of this cycle."""
        wd, cyc = self.watchdog, self.cycle
        cyc.interpolate(now)
        if self.armed and wd.state is SafetyState.INACTIVE and self.cmd_rx_ns > self.activated_ns:
            self.armed = not wd.activate(now)
        cyc.check_age(now)
        if self.drive.read(self.states, now) is DriveResult.DEACTIVATE:
            # as in the torque loop: the hardware asked to stop assisting (e.g. an e-stop frame), with or without
            # a fault of its own: fade, and stay inactive until the next lifecycle activation
            self.armed = False
            wd.deactivate(now, "the drive asked to deactivate")
        faults = self.poll_faults()
        for source, kind, value, t_seen in faults:
            wd.report_fault(Fault(source, fault_kind(kind), float(value), t_seen))
        st = self.states
        for i in range(len(self.names)):
            cyc.observe_joint(i, st.position_rad[i], st.velocity_rad_s[i], now, st.temperature_c[i], st.error_code[i],
                              source=self._sources[i])
        if self.enabled:
            cyc.step(now)
            self.drive.write(self.out, now)
            if not self.active and wd.fade_complete and wd.state is not SafetyState.ACTIVE:
                self.drive.disable(now)
                self.enabled = False
        return faults

    def _tick(self) -> None:
        faults = self._cycle_step(_mono_ns())
        st = self.states
        self.pub_js.publish(_joint_state(self.stamp_now(), self.names, st.position_rad, st.velocity_rad_s, st.torque_nm))
        if faults:
            arr = DiagnosticArray()
            arr.header.stamp = self.stamp_now()
            for source, kind, value, _t in faults:
                arr.status.append(DiagnosticStatus(level=DiagnosticStatus.ERROR, name=str(source), message=str(kind),
                                                   hardware_id=FAULT_HARDWARE_ID,
                                                   values=[KeyValue(key="kind", value=str(kind)),
                                                           KeyValue(key="value", value=f"{float(value):.6g}")]))
            self.pub_diag.publish(arr)


class VisionNode(ExoLifecycleNode):
    """Frames from a source, anonymised on the device, published as ``sensor_msgs/Image`` (anonymised only).

    Every frame goes through :class:`runtime.vision.anonymise.Anonymiser` (face and person
    detectors, held head boxes; ``blur_margin`` widens each region) and out through
    :class:`AnonymizedImagePublisher`, which refuses anything but an AnonymizedFrame. Without the
    anonymiser (import fails) the node refuses to configure: no image leaves the device un-blurred.
    ``source``: ``synthetic`` or a frame-source spec of :func:`runtime.vision.frame_sources.open_source`.
    """

    KIND = "vision"

    def setup(self) -> None:
        from runtime.ros2.image_publisher import AnonymizedImagePublisher

        try:
            from runtime.vision.anonymise import Anonymiser
        except ImportError as exc:
            raise RuntimeError(f"vision: the anonymiser is not available ({exc}); refusing to publish images "
                               "that were not anonymised") from None
        from runtime.vision.frame_sources import SyntheticSource, open_source

        rate = float(self.param("rate_hz"))
        src = str(self.param("source"))
        self.anonymiser = Anonymiser(margin=float(self.param("blur_margin")))
        self.source = SyntheticSource(rate, 16_777_215) if src == "synthetic" else open_source(src, fps=rate)
        self.publisher = AnonymizedImagePublisher(self, topics.CAMERA_IMAGE)
        self.offset_ns = time.time_ns() - time.monotonic_ns()
        self.active = False
        self.timer = self.create_timer(1.0 / rate, self._tick)

    def teardown(self) -> None:
        self.destroy_timer(self.timer)
        self.publisher.destroy(self)
        self.source.close()
        self.anonymiser.close()

    def _tick(self) -> None:
        if not self.active:
            return
        frame = self.source.read()
        if frame is None:
            return
        self.publisher.publish(self.anonymiser.anonymize(frame.image, frame.t_capture_ns), self.offset_ns)


class ReplayNode(ExoLifecycleNode):
    """Republishes a telemetry log's standard-typed topics at the logged pace (x ``speed``) while ACTIVE.

    CDR bytes go out as they were logged (``rclpy.serialization``): what was recorded is what
    is replayed. Topics of the project's own types have no rclpy type support here and are
    counted in ``skipped`` (named once in the log). With ``wait_for_subscribers`` = N > 0 the
    replay starts once every replayed topic has N subscribers (nothing is lost to discovery). Image topics pass the privacy gate at
    recording time, so a log holds anonymised frames only.
    """

    KIND = "replay"

    def setup(self) -> None:
        from mcap.reader import make_reader

        from runtime.telemetry.read import open_log_file, resolve_log

        log = str(self.param("log"))
        if not log:
            raise ValueError("replay: parameter log = '': give the telemetry log to replay")
        _bag, mcap_path = resolve_log(log)
        self.records: list[tuple[int, str, bytes]] = []
        self.types: dict[str, Any] = {}
        self.skipped: dict[str, int] = {}
        with open_log_file(mcap_path) as f:
            for schema, channel, message in make_reader(f).iter_messages(log_time_order=True):
                name = schema.name if schema is not None else ""
                if channel.topic not in self.types and channel.topic not in self.skipped:
                    try:
                        self.types[channel.topic] = message_class(name)
                    except (ImportError, AttributeError, ValueError):
                        self.skipped[channel.topic] = 0
                if channel.topic in self.skipped:
                    self.skipped[channel.topic] += 1
                    continue
                self.records.append((message.log_time, channel.topic, bytes(message.data)))
        if self.skipped:
            self.get_logger().warning(f"replay: no rclpy type support for {sorted(self.skipped)}; not replayed")
        self.pubs = {t: self.create_publisher(cls, t, 50) for t, cls in self.types.items()}
        self.speed = float(self.param("speed"))
        self.loop = bool(self.param("loop"))
        self.index = 0
        self.t0_log = self.records[0][0] if self.records else 0
        self.t0_mono = 0
        self.active = False
        self.started = False
        self.timer = self.create_timer(0.002, self._tick)
        self.get_logger().info(f"replay: {len(self.records)} messages on {len(self.pubs)} topics from {mcap_path}")

    def teardown(self) -> None:
        self.destroy_timer(self.timer)
        for p in self.pubs.values():
            self.destroy_publisher(p)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.active = True
        self.started = False            # the clock starts once every topic has its subscribers
        return SUCCESS

    def _start(self) -> bool:
        need = int(self.param("wait_for_subscribers"))
        if need and any(p.get_subscription_count() < need for p in self.pubs.values()):
            return False
        self.t0_mono = _mono_ns() - int((self.records[self.index][0] - self.t0_log) / self.speed)
        self.started = True
        return True

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.active = False
        return SUCCESS

    def _tick(self) -> None:
        if not self.active or not self.records or (not self.started and not self._start()):
            return
        from rclpy.serialization import deserialize_message

        elapsed = (_mono_ns() - self.t0_mono) * self.speed
        while self.index < len(self.records) and self.records[self.index][0] - self.t0_log <= elapsed:
            _t, topic, data = self.records[self.index]
            self.pubs[topic].publish(deserialize_message(data, self.types[topic]))
            self.index += 1
        if self.index >= len(self.records) and self.loop:
            self.index = 0
            self.t0_mono = _mono_ns()


NODE_CLASSES: dict[str, type[ExoLifecycleNode]] = {
    "vision": VisionNode, "estimator": EstimatorNode, "assistance": AssistanceNode, "safety": SafetyNode,
    "can_bridge": CanBridgeNode, "replay": ReplayNode,
}


def make_node(kind: str, name: str, parameters: dict[str, Any] | None = None) -> ExoLifecycleNode:
    """A node of *kind* named *name* with ROS *parameters* (rclpy must be initialised)."""
    if kind not in NODE_CLASSES:
        raise ValueError(f"node kind = {kind!r}: allowed {sorted(NODE_CLASSES)}")
    return NODE_CLASSES[kind](name, parameters)


__all__ = ["AssistanceNode", "CanBridgeNode", "EstimatorNode", "ExoLifecycleNode", "FAULT_HARDWARE_ID", "NODE_CLASSES",
           "ReplayNode", "SafetyNode", "VisionNode", "latched_qos", "lifecycle_label", "make_node", "message_class"]
