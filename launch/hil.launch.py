"""ros2 launch exo_runtime hil.launch.py -- the HIL rig: the device's nodes on the HIL bus and the emulated AK drive on the simulated knee.

The node set is described once, in launch/hil.yaml; `exo ros launch --description launch/hil.yaml`
starts the same nodes without ros2 launch. Needs the ros2 extra, launch and launch_ros.
"""
from pathlib import Path

from runtime.ros2.launch_support import lifecycle_launch_description

DESCRIPTION = Path(__file__).resolve().with_name("hil.yaml")


def generate_launch_description():
    """The LaunchDescription of launch/hil.yaml (lifecycle nodes configured and activated at start)."""
    return lifecycle_launch_description(DESCRIPTION)
