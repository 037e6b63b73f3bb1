"""ROS 2 standard messages as Cyclone DDS IDL structs (ROS 2 type names, field order and types).

Field for field the ROS 2 Jazzy definitions: ``builtin_interfaces/Time`` (int32 sec, uint32
nanosec), ``std_msgs/Header`` (stamp, string frame_id), ``sensor_msgs/JointState`` (header,
string[] name, float64[] position, velocity, effort), ``geometry_msgs/WrenchStamped``,
``sensor_msgs/Image``, ``std_msgs/String``, ``std_msgs/Float64``. Units as in
:mod:`runtime.ros2.topics`.
"""
# No "from __future__ import annotations": cyclonedds reads the field types at class creation.
from dataclasses import dataclass, field

from cyclonedds.idl import IdlStruct
from cyclonedds.idl.types import float64, int32, sequence, uint8, uint32


@dataclass
class Time_(IdlStruct, typename="builtin_interfaces::msg::dds_::Time_"):
    sec: int32 = 0
    nanosec: uint32 = 0


@dataclass
class Header_(IdlStruct, typename="std_msgs::msg::dds_::Header_"):
    stamp: Time_ = field(default_factory=Time_)
    frame_id: str = ""


@dataclass
class String_(IdlStruct, typename="std_msgs::msg::dds_::String_"):
    data: str = ""


@dataclass
class Float64_(IdlStruct, typename="std_msgs::msg::dds_::Float64_"):
    data: float64 = 0.0


@dataclass
class JointState_(IdlStruct, typename="sensor_msgs::msg::dds_::JointState_"):
    header: Header_ = field(default_factory=Header_)
    name: sequence[str] = field(default_factory=list)
    position: sequence[float64] = field(default_factory=list)
    velocity: sequence[float64] = field(default_factory=list)
    effort: sequence[float64] = field(default_factory=list)


@dataclass
class Vector3_(IdlStruct, typename="geometry_msgs::msg::dds_::Vector3_"):
    x: float64 = 0.0
    y: float64 = 0.0
    z: float64 = 0.0


@dataclass
class Wrench_(IdlStruct, typename="geometry_msgs::msg::dds_::Wrench_"):
    force: Vector3_ = field(default_factory=Vector3_)
    torque: Vector3_ = field(default_factory=Vector3_)


@dataclass
class WrenchStamped_(IdlStruct, typename="geometry_msgs::msg::dds_::WrenchStamped_"):
    header: Header_ = field(default_factory=Header_)
    wrench: Wrench_ = field(default_factory=Wrench_)


@dataclass
class Image_(IdlStruct, typename="sensor_msgs::msg::dds_::Image_"):
    header: Header_ = field(default_factory=Header_)
    height: uint32 = 0
    width: uint32 = 0
    encoding: str = ""
    is_bigendian: uint8 = 0
    step: uint32 = 0
    data: sequence[uint8] = field(default_factory=list)


#: ROS 2 type name -> IDL struct.
BY_ROS_TYPE: dict[str, type[IdlStruct]] = {
    "builtin_interfaces/msg/Time": Time_,
    "std_msgs/msg/Header": Header_,
    "std_msgs/msg/String": String_,
    "std_msgs/msg/Float64": Float64_,
    "sensor_msgs/msg/JointState": JointState_,
    "geometry_msgs/msg/Vector3": Vector3_,
    "geometry_msgs/msg/Wrench": Wrench_,
    "geometry_msgs/msg/WrenchStamped": WrenchStamped_,
    "sensor_msgs/msg/Image": Image_,
}


def time_from_ns(t_ns: int) -> Time_:
    """``builtin_interfaces/Time`` of *t_ns* (ns since the epoch, >= 0)."""
    sec, nanosec = divmod(int(t_ns), 1_000_000_000)
    return Time_(sec=sec, nanosec=nanosec)


def dds_type_name(ros_type: str) -> str:
    """``pkg/msg/Name`` -> ``pkg::msg::dds_::Name_`` (the ROS 2 DDS mapping)."""
    pkg, kind, name = ros_type.split("/")
    return f"{pkg}::{kind}::dds_::{name}_"


def dds_topic_name(ros_topic: str) -> str:
    """``/exo/torque/command`` -> ``rt/exo/torque/command`` (the ROS 2 DDS mapping for topics)."""
    if not ros_topic.startswith("/"):
        raise ValueError(f"ros_topic = {ros_topic!r}: expected an absolute ROS 2 topic name starting with '/'")
    return "rt" + ros_topic


__all__ = ["BY_ROS_TYPE", "Float64_", "Header_", "Image_", "JointState_", "String_", "Time_", "Vector3_", "Wrench_",
           "WrenchStamped_", "dds_topic_name", "dds_type_name", "time_from_ns"]
