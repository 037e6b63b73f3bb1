"""Topic names and ROS 2 message types of the node graph (standard messages only).

The project's own ``.msg`` types (``runtime/msg``) are used in the MCAP log, where their
definitions travel in the file; on the ROS 2 graph the nodes use standard messages, because
rclpy needs generated type support for every type and this package is installed as wheels
(no ``colcon`` build of ``exo_runtime`` interfaces). Conventions (SI, joint side):

* ``sensor_msgs/JointState.effort``: torque at the joint, N*m, flexion positive;
* ``geometry_msgs/WrenchStamped``: ``frame_id`` = the joint name, the joint axis is z;
  ``wrench.torque.z`` = the commanded joint torque (N*m), forces and other torques zero;
* ``std_msgs/Float64`` on the gait phase topic: phase in [0, 1), heel strike = 0.
"""
from __future__ import annotations

#: (topic, ROS 2 type name) of every topic the nodes publish.
CAMERA_IMAGE = "/exo/camera/image_anonymized"          # sensor_msgs/msg/Image (anonymised frames only)
GAIT_PHASE = "/exo/estimation/gait_phase"              # std_msgs/msg/Float64
ASSISTANCE_REQUEST = "/exo/assistance/request"          # sensor_msgs/msg/JointState (effort = requested N*m)
TORQUE_COMMAND = "/exo/torque/command"                  # sensor_msgs/msg/JointState (effort = commanded N*m)
TORQUE_WRENCH = "/exo/torque/wrench"                    # geometry_msgs/msg/WrenchStamped (torque.z, N*m)
JOINT_STATES = "/exo/joint_states"                      # sensor_msgs/msg/JointState (measured)
SAFETY_STATE = "/exo/safety/state"                      # std_msgs/msg/String (INACTIVE/ACTIVE/FADING/FAULTED)
SAFETY_RESET = "/exo/safety/reset"                      # std_msgs/msg/Empty (operator fault reset)
SAFETY_ESTOP = "/exo/safety/estop"                      # std_msgs/msg/Bool (true: latched e-stop)
DIAGNOSTICS = "/diagnostics"                            # diagnostic_msgs/msg/DiagnosticArray

TYPES: dict[str, str] = {
    CAMERA_IMAGE: "sensor_msgs/msg/Image",
    GAIT_PHASE: "std_msgs/msg/Float64",
    ASSISTANCE_REQUEST: "sensor_msgs/msg/JointState",
    TORQUE_COMMAND: "sensor_msgs/msg/JointState",
    TORQUE_WRENCH: "geometry_msgs/msg/WrenchStamped",
    JOINT_STATES: "sensor_msgs/msg/JointState",
    SAFETY_STATE: "std_msgs/msg/String",
    SAFETY_RESET: "std_msgs/msg/Empty",
    SAFETY_ESTOP: "std_msgs/msg/Bool",
    DIAGNOSTICS: "diagnostic_msgs/msg/DiagnosticArray",
}
