"""The only way this project puts a camera image on a ROS 2 topic: anonymised frames only.

:class:`AnonymizedImagePublisher` wraps an rclpy publisher of ``sensor_msgs/msg/Image`` and
accepts nothing but :class:`runtime.core.privacy.AnonymizedFrame` (anything else raises
:class:`runtime.core.privacy.PrivacyViolation` before a byte is serialised). Images are ``rgb8``,
``frame_id = "camera"``, stamped with the capture time (monotonic ns, plus *offset_ns* when the
caller converts to wall time).
"""
from __future__ import annotations

from typing import Any

from runtime.core.privacy import AnonymizedFrame, require_anonymized

CAMERA_FRAME_ID = "camera"


def image_message(frame: AnonymizedFrame, offset_ns: int = 0) -> Any:
    """An rclpy ``sensor_msgs.msg.Image`` of an anonymised frame."""
    from sensor_msgs.msg import Image

    frame = require_anonymized(frame, "ROS 2 image message")
    img = frame.image
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype.name != "uint8":
        raise ValueError(f"AnonymizedFrame.image: shape {img.shape} dtype {img.dtype}: expected (H, W, 3) uint8 RGB")
    msg = Image()
    t = int(frame.t_capture_ns) + int(offset_ns)
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(t, 1_000_000_000)
    msg.header.frame_id = CAMERA_FRAME_ID
    msg.height, msg.width = int(img.shape[0]), int(img.shape[1])
    msg.encoding = "rgb8"
    msg.is_bigendian = 0
    msg.step = 3 * msg.width
    msg.data = img.tobytes()
    return msg


class AnonymizedImagePublisher:
    """``publish(frame)`` for anonymised frames on *topic* of *node* (an rclpy node)."""

    def __init__(self, node: Any, topic: str, qos_depth: int = 2) -> None:
        from sensor_msgs.msg import Image

        self.topic = topic
        self._pub = node.create_publisher(Image, topic, qos_depth)
        self.published = 0

    def publish(self, frame: AnonymizedFrame, offset_ns: int = 0) -> None:
        """Publish *frame*; raises :class:`runtime.core.privacy.PrivacyViolation` for anything but an AnonymizedFrame."""
        require_anonymized(frame, f"ROS 2 image topic {self.topic}")
        self._pub.publish(image_message(frame, offset_ns))
        self.published += 1

    def destroy(self, node: Any) -> None:
        node.destroy_publisher(self._pub)


__all__ = ["AnonymizedImagePublisher", "image_message"]
