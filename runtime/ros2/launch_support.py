"""Build a ``launch.LaunchDescription`` from a node-set description (used by ``launch/*.launch.py``).

Each node becomes a ``launch_ros.actions.LifecycleNode`` running ``exo_ros_node KIND`` with the
description's parameters; autostart nodes get a CONFIGURE event at launch and an ACTIVATE event
once they reach INACTIVE from CONFIGURING (not after a later deactivation). Companion processes
become ``ExecuteProcess`` actions. Nodes are listed downstream first (CAN bridge, safety, ...),
as :mod:`runtime.ros2.launcher` starts them. Imports ``launch``/``launch_ros`` only when called.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from runtime.ros2.description import load_description

PACKAGE = "exo_runtime"
EXECUTABLE = "exo_ros_node"


def lifecycle_launch_description(description_path: str | Path) -> Any:
    """The LaunchDescription of the node set in *description_path*."""
    from launch import LaunchDescription
    from launch.actions import EmitEvent, ExecuteProcess, RegisterEventHandler, SetEnvironmentVariable
    from launch.events import matches_action
    from launch_ros.actions import LifecycleNode
    from launch_ros.event_handlers import OnStateTransition
    from launch_ros.events.lifecycle import ChangeState
    from lifecycle_msgs.msg import Transition

    from runtime.ros2.launcher import START_ORDER

    desc = load_description(description_path)
    actions: list[Any] = [SetEnvironmentVariable("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")]
    for proc in desc.processes:
        actions.append(ExecuteProcess(cmd=desc.process_argv(proc), name=proc.name, output="screen"))
    for spec in sorted(desc.nodes, key=lambda s: START_ORDER.index(s.kind)):
        node = LifecycleNode(package=PACKAGE, executable=EXECUTABLE, name=spec.name, namespace="",
                             arguments=[spec.kind], parameters=[desc.ros_parameters(spec)], output="screen")
        actions.append(node)
        if spec.autostart:
            activate = EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node),
                                                   transition_id=Transition.TRANSITION_ACTIVATE))
            actions.append(RegisterEventHandler(OnStateTransition(target_lifecycle_node=node, start_state="configuring",
                                                                  goal_state="inactive", entities=[activate])))
            actions.append(EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node),
                                                       transition_id=Transition.TRANSITION_CONFIGURE)))
    return LaunchDescription(actions)


__all__ = ["EXECUTABLE", "PACKAGE", "lifecycle_launch_description"]
