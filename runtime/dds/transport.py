"""Publish and subscribe the node graph's topics over Cyclone DDS, as a ROS 2 node would.

:class:`DdsTransport` owns one participant on a domain configured for ``lo`` only (default;
see :data:`firmware_bridge.netns.CYCLONE_LO_CONFIG`), with ROS 2's default QoS (reliable, volatile,
keep last 10) and XCDR1 data representation. Topics and types are those of
:mod:`runtime.ros2.topics`; images are written only from
:class:`runtime.core.privacy.AnonymizedFrame` (:meth:`DdsTransport.publish_image`).
"""
from __future__ import annotations

from typing import Any, Sequence

from runtime.dds.types import (BY_ROS_TYPE, Float64_, Header_, Image_, JointState_, String_, WrenchStamped_,
                               dds_topic_name, time_from_ns)
from runtime.core.privacy import AnonymizedFrame, require_anonymized
from runtime.ros2 import topics

_domains: dict[int, Any] = {}


def _domain(domain_id: int, config: str) -> Any:
    """The process's Cyclone domain *domain_id*, created once with *config* (loopback only)."""
    from cyclonedds.domain import Domain

    if domain_id not in _domains:
        _domains[domain_id] = Domain(domain_id, config)
    return _domains[domain_id]


def ros_default_qos() -> Any:
    """ROS 2's default topic QoS (reliable, volatile, keep last 10) with XCDR1 data representation."""
    from cyclonedds.core import Policy, Qos
    from cyclonedds.util import duration

    return Qos(Policy.Reliability.Reliable(duration(milliseconds=100)), Policy.Durability.Volatile,
               Policy.History.KeepLast(10), Policy.DataRepresentation(use_cdrv0_representation=True))


class DdsTransport:
    """Writers and readers for ROS 2 topics by name (``/exo/...``) on one Cyclone participant."""

    def __init__(self, domain_id: int = 0, config: str | None = None) -> None:
        from cyclonedds.domain import DomainParticipant

        from firmware_bridge.netns import CYCLONE_LO_CONFIG, require_isolated_dds

        if not 0 <= domain_id <= 232:
            raise ValueError(f"domain_id = {domain_id}: allowed 0..232 (ROS_DOMAIN_ID range)")
        require_isolated_dds("Cyclone DDS transport")
        self._domain = _domain(domain_id, config or CYCLONE_LO_CONFIG)
        self.participant = DomainParticipant(domain_id)
        self._topics: dict[str, Any] = {}
        self._writers: dict[str, Any] = {}
        self._readers: dict[str, Any] = {}
        self.qos = ros_default_qos()

    def _topic(self, ros_topic: str) -> Any:
        from cyclonedds.topic import Topic

        if ros_topic not in self._topics:
            if ros_topic not in topics.TYPES:
                raise ValueError(f"topic {ros_topic!r}: not a topic of the node graph ({sorted(topics.TYPES)})")
            idl = BY_ROS_TYPE[topics.TYPES[ros_topic]]
            self._topics[ros_topic] = Topic(self.participant, dds_topic_name(ros_topic), idl, qos=self.qos)
        return self._topics[ros_topic]

    def writer(self, ros_topic: str) -> Any:
        from cyclonedds.pub import DataWriter

        if ros_topic not in self._writers:
            self._writers[ros_topic] = DataWriter(self.participant, self._topic(ros_topic), qos=self.qos)
        return self._writers[ros_topic]

    def reader(self, ros_topic: str) -> Any:
        """A DataReader of *ros_topic* (``take()`` returns the IDL samples)."""
        from cyclonedds.sub import DataReader

        if ros_topic not in self._readers:
            self._readers[ros_topic] = DataReader(self.participant, self._topic(ros_topic), qos=self.qos)
        return self._readers[ros_topic]

    def take(self, ros_topic: str, n: int = 256) -> list[Any]:
        """Up to *n* received samples of *ros_topic* (invalid samples, e.g. writer disposal, left out)."""
        idl = BY_ROS_TYPE[topics.TYPES[ros_topic]]
        return [s for s in self.reader(ros_topic).take(N=n) if isinstance(s, idl)]

    def publish(self, ros_topic: str, sample: Any) -> None:
        """Write an IDL sample on *ros_topic*; image topics go through :meth:`publish_image` only."""
        if topics.TYPES.get(ros_topic) == "sensor_msgs/msg/Image":
            require_anonymized(sample, f"DDS image topic {ros_topic}")
        expected = BY_ROS_TYPE[topics.TYPES[ros_topic]] if ros_topic in topics.TYPES else None
        if expected is not None and not isinstance(sample, expected):
            raise TypeError(f"topic {ros_topic!r} carries {topics.TYPES[ros_topic]}, got {type(sample).__name__}")
        self.writer(ros_topic).write(sample)

    def publish_joint_state(self, ros_topic: str, stamp_ns: int, names: Sequence[str], position: Sequence[float] = (),
                            velocity: Sequence[float] = (), effort: Sequence[float] = ()) -> None:
        """A ``sensor_msgs/JointState`` (rad, rad/s, N*m)."""
        self.publish(ros_topic, JointState_(header=Header_(stamp=time_from_ns(stamp_ns)), name=list(names),
                                            position=[float(x) for x in position],
                                            velocity=[float(x) for x in velocity], effort=[float(x) for x in effort]))

    def publish_float64(self, ros_topic: str, value: float) -> None:
        self.publish(ros_topic, Float64_(data=float(value)))

    def publish_string(self, ros_topic: str, text: str) -> None:
        self.publish(ros_topic, String_(data=str(text)))

    def publish_wrench(self, ros_topic: str, stamp_ns: int, frame_id: str, torque_z_nm: float) -> None:
        """Joint torque as a wrench in the joint frame (axis z), N*m."""
        w = WrenchStamped_(header=Header_(stamp=time_from_ns(stamp_ns), frame_id=frame_id))
        w.wrench.torque.z = float(torque_z_nm)
        self.publish(ros_topic, w)

    def publish_image(self, frame: AnonymizedFrame, offset_ns: int = 0, ros_topic: str = topics.CAMERA_IMAGE) -> None:
        """An anonymised frame as ``sensor_msgs/Image`` (rgb8, frame ``camera``); anything else is refused."""
        frame = require_anonymized(frame, f"DDS image topic {ros_topic}")
        img = frame.image
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype.name != "uint8":
            raise ValueError(f"AnonymizedFrame.image: shape {img.shape} dtype {img.dtype}: expected (H, W, 3) uint8")
        h, w = int(img.shape[0]), int(img.shape[1])
        msg = Image_(header=Header_(stamp=time_from_ns(int(frame.t_capture_ns) + int(offset_ns)), frame_id="camera"),
                     height=h, width=w, encoding="rgb8", is_bigendian=0, step=3 * w, data=img.tobytes())
        self.writer(ros_topic).write(msg)

    def close(self) -> None:
        """Delete the participant (and everything it owns)."""
        self._writers.clear()
        self._readers.clear()
        self._topics.clear()
        self.participant = None

    def __enter__(self) -> DdsTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["DdsTransport", "ros_default_qos"]
