"""``exo_ros_node KIND --ros-args ...``: one managed node, as started by ``ros2 launch`` (launch/*.launch.py).

The node's name, namespace and parameters come from the ROS arguments the launch system passes
(``-r __node:=NAME``, ``--params-file``); KIND (vision, estimator, assistance, safety,
can_bridge, replay) is the first plain argument. The node starts UNCONFIGURED; the launch file
drives its lifecycle. On SIGINT/SIGTERM an ACTIVE safety node is deactivated and the process
keeps spinning until the fade to zero is complete before it exits.
"""
from __future__ import annotations

import signal
import sys
import time


def main(argv: list[str] | None = None) -> int:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions
    from rclpy.utilities import remove_ros_args

    from firmware_bridge.netns import require_isolated_dds
    from runtime.ros2.nodes import NODE_CLASSES, SafetyNode, lifecycle_label, make_node

    args = list(sys.argv if argv is None else argv)
    plain = remove_ros_args(args)[1:]
    if len(plain) != 1 or plain[0] not in NODE_CLASSES:
        print(f"exo_ros_node: KIND = {plain!r}: give exactly one of {sorted(NODE_CLASSES)}", file=sys.stderr)
        return 2
    kind = plain[0]
    require_isolated_dds(f"exo_ros_node {kind}")
    stop = {"flag": False}
    signal.signal(signal.SIGINT, lambda *_: stop.update(flag=True))
    signal.signal(signal.SIGTERM, lambda *_: stop.update(flag=True))
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    node = make_node(kind, kind)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        while not stop["flag"] and rclpy.ok():
            executor.spin_once(timeout_sec=0.05)
        if isinstance(node, SafetyNode) and lifecycle_label(node) == "active":
            node.trigger_deactivate()
            t_end = time.monotonic() + node.sup.params.fade_time_s + 2.0 / node.rate_hz + 1.0
            while not node.sup.fade_complete and time.monotonic() < t_end:
                executor.spin_once(timeout_sec=0.005)
            for _ in range(3):                       # a few zero commands after the fade
                executor.spin_once(timeout_sec=2.0 / node.rate_hz)
        elif lifecycle_label(node) == "active":
            node.trigger_deactivate()
            t_end = time.monotonic() + 0.5
            while getattr(node, "enabled", False) and time.monotonic() < t_end:
                executor.spin_once(timeout_sec=0.005)
        node.trigger_shutdown()
    finally:
        executor.remove_node(node)
        node.destroy_node()
        executor.shutdown()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
