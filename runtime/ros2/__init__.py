"""ROS 2 (rclpy, Jazzy) adapters over the runtime: managed lifecycle nodes and a launcher.

Only :mod:`runtime.ros2.nodes` imports ``rclpy`` at module import time (the other modules import
it inside their functions), so
``import runtime`` (and :mod:`runtime.ros2.description`) work without the ``ros2`` extra.

* :mod:`runtime.ros2.description`: the node-set description (``launch/*.yaml``) shared by the
  launch files and ``exo ros launch``: which nodes, which configuration files, which parameters;
* :mod:`runtime.ros2.topics`: topic names and message types (standard ROS 2 messages only);
* :mod:`runtime.ros2.nodes`: vision, estimator, assistance, safety, CAN bridge and replay nodes;
* :mod:`runtime.ros2.image_publisher`: the only image publisher (anonymised frames only);
* :mod:`runtime.ros2.launcher`: starts a node set (one process, or one process per node as
  ``ros2 launch`` does), drives the lifecycle and shuts down with a fade to zero;
* :mod:`runtime.ros2.node_main`: ``exo_ros_node KIND --ros-args ...``, what the launch files run;
* :mod:`runtime.ros2.launch_support`: the launch files' LaunchDescription from a description;
* :mod:`runtime.ros2.probe`: a subscriber that records the graph's messages and drives
  lifecycle transitions (used by the tests and ``exo ros probe``).

Every DDS participant must run inside a private network namespace (``firmware_bridge.netns``) unless the
operator explicitly puts the device on a ROS 2 network.
"""
