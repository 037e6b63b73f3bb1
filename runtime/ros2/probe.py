"""A subscriber on the node graph: records what the nodes publish and drives lifecycle transitions.

``probe(...)`` joins the graph as an ordinary node (own process), waits until the pipeline's
topics flow and the commanded torque exceeds ``min_torque_nm``, asks the safety node to
DEACTIVATE through its lifecycle service (``/<safety>/change_state``), keeps recording, and
returns what it saw:

* ``counts``: messages received per topic;
* ``fade``: the deactivation call's wall time, the fade start the safety node reports in
  ``/diagnostics``, the torque at that moment, the header stamp of the first command that is
  exactly zero, ``zero_after_s`` = that stamp minus the fade start (the fade time plus the
  executor's lateness), the largest |torque| in any later command and in any command stamped
  at or after fade start + fade time, and the safety node's lifecycle state afterwards.

Stamps are the publishing node's clock (system time, same host). Used by the tests and by
``exo ros probe``; it must run in the same (private) network namespace as the nodes.
"""
from __future__ import annotations

import time
from typing import Any

from runtime.ros2 import topics


def probe(safety_node: str = "safety", wait_s: float = 30.0, after_s: float = 0.6, min_torque_nm: float = 1.0,
          deactivate: bool = True) -> dict[str, Any]:
    """Record the graph, deactivate *safety_node* once torque flows, keep recording *after_s*; see the module doc."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from geometry_msgs.msg import WrenchStamped
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState, GetState
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Float64, String

    from firmware_bridge.netns import require_isolated_dds
    from runtime.ros2.nodes import latched_qos

    require_isolated_dds("exo ros probe")
    rclpy.init()
    node = rclpy.create_node("exo_probe")
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    counts: dict[str, int] = {}
    commands: list[tuple[int, list[float]]] = []
    diag: list[dict[str, str]] = []
    states: list[str] = []

    def count(topic: str):
        def cb(msg):
            counts[topic] = counts.get(topic, 0) + 1
            if topic == topics.TORQUE_COMMAND:
                s = msg.header.stamp
                commands.append((s.sec * 1_000_000_000 + s.nanosec, list(msg.effort)))
            elif topic == topics.DIAGNOSTICS:
                for st in msg.status:
                    if st.hardware_id == "exo_safety":
                        diag.append({kv.key: kv.value for kv in st.values})
            elif topic == topics.SAFETY_STATE:
                states.append(msg.data)
        return cb

    for topic, cls in ((topics.GAIT_PHASE, Float64), (topics.ASSISTANCE_REQUEST, JointState),
                       (topics.TORQUE_COMMAND, JointState), (topics.TORQUE_WRENCH, WrenchStamped),
                       (topics.JOINT_STATES, JointState), (topics.DIAGNOSTICS, DiagnosticArray)):
        node.create_subscription(cls, topic, count(topic), 100)
    node.create_subscription(String, topics.SAFETY_STATE, count(topics.SAFETY_STATE), latched_qos())
    change = node.create_client(ChangeState, f"/{safety_node}/change_state")
    get = node.create_client(GetState, f"/{safety_node}/get_state")
    out: dict[str, Any] = {"counts": counts, "fade": None, "timed_out": False}
    try:
        t_end = time.monotonic() + wait_s
        need = (topics.GAIT_PHASE, topics.ASSISTANCE_REQUEST, topics.TORQUE_COMMAND, topics.JOINT_STATES)
        while time.monotonic() < t_end:
            ex.spin_once(timeout_sec=0.01)
            flowing = all(counts.get(t, 0) >= 5 for t in need)
            if flowing and commands and max(abs(x) for x in commands[-1][1]) >= min_torque_nm:
                break
        else:
            out["timed_out"] = True
            return out
        if not deactivate:
            return out
        if not change.wait_for_service(timeout_sec=5.0):
            raise RuntimeError(f"/{safety_node}/change_state service not available")
        n_before = len(commands)
        tau_before = commands[-1][1]
        t_call = time.time_ns()
        fut = change.call_async(ChangeState.Request(transition=Transition(id=Transition.TRANSITION_DEACTIVATE)))
        ex.spin_until_future_complete(fut, timeout_sec=5.0)
        t_resp = time.time_ns()
        t_stop = time.monotonic() + after_s
        while time.monotonic() < t_stop:
            ex.spin_once(timeout_sec=0.01)
        gfut = get.call_async(GetState.Request())
        ex.spin_until_future_complete(gfut, timeout_sec=5.0)
        fade_start = max((int(d.get("fade_start_ns", "0")) for d in diag), default=0)
        after = [(t, e) for t, e in commands[n_before - 1:] if t >= fade_start] if fade_start else []
        first_zero = next((t for t, e in after if all(x == 0.0 for x in e)), None)
        later = [abs(x) for t, e in after if first_zero is not None and t >= first_zero for x in e]
        fade_time_s = float(diag[-1].get("fade_time_s", "nan")) if diag else float("nan")
        past = [abs(x) for t, e in after if fade_start and t >= fade_start + fade_time_s * 1e9 for x in e]
        ramp = [(t - fade_start, max(abs(x) for x in e)) for t, e in after if first_zero is None or t <= first_zero]
        out["fade"] = {
            "call_wall_ns": t_call, "response_wall_ns": t_resp,
            "accepted": bool(fut.result().success) if fut.result() is not None else False,
            "fade_start_ns": fade_start,
            "fade_time_s": fade_time_s,
            "max_abs_after_fade_time_nm": max(past) if past else None,
            "commands_after_fade_time": len(past),
            "torque_before_nm": tau_before,
            "first_zero_stamp_ns": first_zero,
            "zero_after_s": None if first_zero is None or not fade_start else (first_zero - fade_start) * 1e-9,
            "max_abs_after_zero_nm": max(later) if later else None,
            "commands_after_zero": len(later),
            "ramp_s_nm": [(dt * 1e-9, a) for dt, a in ramp],
            "lifecycle_after": gfut.result().current_state.label if gfut.result() is not None else "",
            "safety_states_seen": states,
        }
        return out
    finally:
        ex.remove_node(node)
        node.destroy_node()
        ex.shutdown()
        rclpy.try_shutdown()


__all__ = ["probe"]
