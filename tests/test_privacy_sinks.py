"""No path bypasses anonymisation: the MCAP image channel, report images, the DDS image topic and the
ROS 2 image topic all refuse a raw frame (PrivacyViolation) and carry an AnonymizedFrame unchanged;
the vision node publishes what the Anonymiser returns.

``runtime.core.privacy._issue`` stands in for the anonymiser here (it is how runtime.vision.anonymise
wraps a blurred image). DDS and ROS 2 run in a child process inside a private network namespace.
"""
from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from runtime.core.privacy import AnonymizedFrame, PrivacyViolation, _issue  # noqa: E402

T_NS = 1_700_000_000_000_000_000


def _frame(h: int = 6, w: int = 8) -> tuple[np.ndarray, AnonymizedFrame]:
    img = (np.arange(h * w * 3, dtype=np.uint32) % 251).astype(np.uint8).reshape(h, w, 3)
    return img.copy(), _issue(img, T_NS, [(0, 0, 4, 3)], ["face-detector"])


def test_mcap_image_channel_refuses_raw_frames_and_logs_anonymised_ones(tmp_path: Path) -> None:
    from runtime.telemetry import schema as ts
    from runtime.telemetry.log import TelemetryLog
    from runtime.telemetry.read import iter_messages

    raw, anon = _frame()
    log = TelemetryLog(tmp_path / "tel")
    with pytest.raises(ValueError, match="no converter"):
        log.register("/exo/camera/image_anonymized", "sensor_msgs/msg/Image", lambda r: r)
    log.register("/exo/camera/image_anonymized", "sensor_msgs/msg/Image")
    hand_made = ts.make("sensor_msgs/msg/Image", header=ts.make("std_msgs/msg/Header", stamp=1, frame_id="camera"),
                        height=6, width=8, encoding="rgb8", is_bigendian=0, step=24, data=raw.reshape(-1))
    with log:
        for bad in (raw, hand_made, raw.tobytes()):
            with pytest.raises(PrivacyViolation, match="MCAP log image topic"):
                log.write("/exo/camera/image_anonymized", T_NS, bad)
        assert log.write("/exo/camera/image_anonymized", T_NS, anon)
    msgs = list(iter_messages(tmp_path / "tel"))
    assert len(msgs) == 1
    _topic, msgtype, _ns, msg = msgs[0]
    assert msgtype == "sensor_msgs/msg/Image" and (msg.height, msg.width, msg.encoding, msg.step) == (6, 8, "rgb8", 24)
    assert msg.header.frame_id == "camera" and msg.header.stamp.sec == T_NS // 10**9
    assert np.array_equal(np.asarray(msg.data).reshape(6, 8, 3), raw)


def test_report_image_writer_refuses_raw_frames(tmp_path: Path) -> None:
    import cv2

    from runtime.report.image_sinks import write_report_image

    raw, anon = _frame()
    with pytest.raises(PrivacyViolation, match="report image"):
        write_report_image(raw, tmp_path / "raw.png")
    assert not (tmp_path / "raw.png").exists()
    p = write_report_image(anon, tmp_path / "plots" / "frame.png")
    back = cv2.imread(str(p), cv2.IMREAD_COLOR)[:, :, ::-1]
    assert np.array_equal(back, raw)
    with pytest.raises(ValueError, match="suffix"):
        write_report_image(anon, tmp_path / "frame.jpg")


def test_anonymized_frame_cannot_be_forged() -> None:
    raw, _ = _frame()
    with pytest.raises(PrivacyViolation):
        AnonymizedFrame(raw, T_NS, (), (), object())


def _child() -> dict:
    """In a private network namespace: the DDS and ROS 2 image sinks."""
    import time

    out: dict = {}
    raw, anon = _frame()
    from runtime.dds.transport import DdsTransport
    from runtime.dds.types import Image_
    from runtime.ros2 import topics

    with DdsTransport() as dds:
        reader = dds.reader(topics.CAMERA_IMAGE)
        refused = []
        for bad in (raw, Image_(height=6, width=8, encoding="rgb8", step=24, data=raw.tobytes())):
            try:
                dds.publish_image(bad) if isinstance(bad, np.ndarray) else dds.publish(topics.CAMERA_IMAGE, bad)
                refused.append(False)
            except PrivacyViolation:
                refused.append(True)
        out["dds_refused"] = refused
        got = []
        end = time.monotonic() + 5.0
        while not got and time.monotonic() < end:
            dds.publish_image(anon)
            time.sleep(0.05)
            got = [s for s in reader.take(N=10) if isinstance(s, Image_)]
        out["dds_received"] = bool(got) and bytes(got[0].data) == raw.tobytes() and got[0].encoding == "rgb8"
    try:
        import rclpy
        from sensor_msgs.msg import Image
    except ImportError as exc:
        out["ros"] = f"skipped: {exc}"
        return out
    from runtime.ros2.image_publisher import AnonymizedImagePublisher

    rclpy.init()
    node = rclpy.create_node("privacy_probe")
    pub = AnonymizedImagePublisher(node, topics.CAMERA_IMAGE)
    rx: list = []
    node.create_subscription(Image, topics.CAMERA_IMAGE, rx.append, 10)
    try:
        pub.publish(raw)
        out["ros_refused"] = False
    except PrivacyViolation:
        out["ros_refused"] = True
    end = time.monotonic() + 5.0
    while not rx and time.monotonic() < end:
        pub.publish(anon)
        rclpy.spin_once(node, timeout_sec=0.05)
    out["ros_received"] = bool(rx) and bytes(rx[0].data) == raw.tobytes() and rx[0].header.frame_id == "camera"
    out["ros_published"] = pub.published
    # the vision node: synthetic frames -> Anonymiser -> the same (gated) image publisher
    from rclpy.executors import SingleThreadedExecutor

    from runtime.ros2.nodes import make_node

    pub.destroy(node)
    rx.clear()
    if importlib.util.find_spec("mediapipe") is None:
        out["vision_images"] = "skipped: the 'vision' extra (mediapipe) is not installed"
        node.destroy_node()
        rclpy.shutdown()
        return out
    vision = make_node("vision", "vision", {"rate_hz": 10.0})
    ex = SingleThreadedExecutor()
    ex.add_node(vision)
    ex.add_node(node)
    ok = vision.trigger_configure().name == "SUCCESS" and vision.trigger_activate().name == "SUCCESS"
    end = time.monotonic() + 20.0
    while ok and len(rx) < 3 and time.monotonic() < end:
        ex.spin_once(timeout_sec=0.05)
    out["vision_images"] = len(rx)
    out["vision_encoding"] = rx[0].encoding if rx else ""
    vision.trigger_deactivate()
    vision.trigger_shutdown()
    ex.shutdown()
    node.destroy_node()
    vision.destroy_node()
    rclpy.shutdown()
    return out


def test_dds_and_ros2_image_topics_refuse_raw_frames() -> None:
    from firmware_bridge.netns import netns_available, run_isolated

    ok, why = netns_available()
    if not ok:
        pytest.skip(why)
    pytest.importorskip("cyclonedds", reason="the 'dds' extra (cyclonedds) is not installed")
    r = run_isolated([sys.executable, __file__, "child"], timeout=120, cwd=str(REPO),
                     env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["dds_refused"] == [True, True] and res["dds_received"] is True
    if isinstance(res.get("ros"), str):
        pytest.skip(f"ROS 2 image topic not checked: {res['ros']}")
    assert res["ros_refused"] is True and res["ros_received"] is True
    if isinstance(res["vision_images"], str):
        pytest.skip(f"vision node not checked: {res['vision_images']}")
    assert res["vision_images"] >= 3 and res["vision_encoding"] == "rgb8"     # the vision node's anonymised frames


if __name__ == "__main__" and sys.argv[1:] == ["child"]:
    print(json.dumps(_child()), flush=True)
