"""ros2 launch exo_runtime device.launch.py -- the device: CAN bridge, safety, assistance, estimator (and vision, started by hand until the anonymiser exists).

The node set is described once, in launch/device.yaml; `exo ros launch --description launch/device.yaml`
starts the same nodes without ros2 launch. Needs the ros2 extra, launch and launch_ros.
"""
from pathlib import Path

from runtime.ros2.launch_support import lifecycle_launch_description

DESCRIPTION = Path(__file__).resolve().with_name("device.yaml")


def generate_launch_description():
    """The LaunchDescription of launch/device.yaml (lifecycle nodes configured and activated at start)."""
    return lifecycle_launch_description(DESCRIPTION)
