"""ros2 launch exo_runtime replay.launch.py -- log replay: a recorded telemetry log's standard topics republished at the recorded pace.

The node set is described once, in launch/replay.yaml; `exo ros launch --description launch/replay.yaml`
starts the same nodes without ros2 launch. Needs the ros2 extra, launch and launch_ros.
"""
from pathlib import Path

from runtime.ros2.launch_support import lifecycle_launch_description

DESCRIPTION = Path(__file__).resolve().with_name("replay.yaml")


def generate_launch_description():
    """The LaunchDescription of launch/replay.yaml (lifecycle nodes configured and activated at start)."""
    return lifecycle_launch_description(DESCRIPTION)
