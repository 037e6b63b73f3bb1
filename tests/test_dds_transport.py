"""The node graph's topics over Cyclone DDS without rclpy: ROS 2 names, XCDR1, readable by rosbags and rclpy.

Byte-level checks need no participant. The transport test runs in a child process inside a private
network namespace: a publisher process with rclpy made unimportable (``sys.modules['rclpy'] = None``)
runs the phase -> assistance -> safety chain; this child subscribes with Cyclone DDS (and with rclpy
when it is installed, to show a ROS 2 node sees the same topics), and every received sample
deserializes with rosbags' CDR for the same ROS 2 type.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

pytest.importorskip("cyclonedds", reason="the 'dds' extra (cyclonedds) is not installed")

from runtime.telemetry import schema as ts  # noqa: E402
from runtime.dds.types import (BY_ROS_TYPE, Float64_, Header_, Image_, JointState_, String_, WrenchStamped_,  # noqa: E402
                               dds_topic_name, dds_type_name, time_from_ns)

T_NS = 1_700_000_000_123_456_789


def test_type_and_topic_names_follow_the_ros2_dds_mapping() -> None:
    for ros_type, idl in BY_ROS_TYPE.items():
        assert idl.__idl_typename__ == dds_type_name(ros_type)
    assert String_.__idl_typename__ == "std_msgs::msg::dds_::String_"
    assert dds_topic_name("/exo/torque/command") == "rt/exo/torque/command"
    with pytest.raises(ValueError, match="absolute"):
        dds_topic_name("exo/x")


def _rosbags(ros_type: str, **fields):
    return ts.serialize(ts.make(ros_type, **fields))


def test_serialized_bytes_equal_rosbags_cdr() -> None:
    """XCDR1 little-endian: the same bytes rosbags writes (ROS 2's CDR), strings included here."""
    hdr = ts.make("std_msgs/msg/Header", stamp=T_NS, frame_id="knee_r")
    cases = [
        (Float64_(data=0.37), _rosbags("std_msgs/msg/Float64", data=0.37)),
        (String_(data="FADING"), _rosbags("std_msgs/msg/String", data="FADING")),
        (JointState_(header=Header_(stamp=time_from_ns(T_NS), frame_id="knee_r"), name=["knee_r", "hip"],
                     position=[0.1, 0.2], velocity=[], effort=[-4.5, 0.0]),
         _rosbags("sensor_msgs/msg/JointState", header=hdr, name=["knee_r", "hip"], position=[0.1, 0.2], velocity=[],
                  effort=[-4.5, 0.0])),
    ]
    w = WrenchStamped_(header=Header_(stamp=time_from_ns(T_NS), frame_id="knee_r"))
    w.wrench.torque.z = -3.25
    v0 = ts.make("geometry_msgs/msg/Vector3", x=0.0, y=0.0, z=0.0)
    cases.append((w, _rosbags("geometry_msgs/msg/WrenchStamped", header=hdr, wrench=ts.make(
        "geometry_msgs/msg/Wrench", force=v0, torque=ts.make("geometry_msgs/msg/Vector3", x=0.0, y=0.0, z=-3.25)))))
    img = np.arange(2 * 3 * 3, dtype=np.uint8)
    cases.append((Image_(header=Header_(stamp=time_from_ns(T_NS), frame_id="camera"), height=2, width=3,
                         encoding="rgb8", is_bigendian=0, step=9, data=img.tobytes()),
                  _rosbags("sensor_msgs/msg/Image", header=ts.make("std_msgs/msg/Header", stamp=T_NS, frame_id="camera"),
                           height=2, width=3, encoding="rgb8", is_bigendian=0, step=9, data=img)))
    for sample, ref in cases:
        data = sample.serialize()
        assert data[:4] == b"\x00\x01\x00\x00"            # CDR_LE encapsulation = XCDR1, little-endian
        assert data == ref, type(sample).__name__


def _publisher_argv(seconds: float, fade_at: float) -> list[str]:
    code = ("import sys; sys.modules['rclpy'] = None\n"
            "from runtime.dds.pipeline_publisher import main\n"
            f"sys.exit(main(['--seconds', '{seconds}', '--fade-at', '{fade_at}', '--rate-hz', '100']))")
    return [sys.executable, "-c", code]


def _child() -> dict:
    from runtime.dds.transport import DdsTransport
    from runtime.ros2 import topics

    pub = subprocess.Popen(_publisher_argv(3.0, 2.0), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    got: dict[str, list] = {t: [] for t in (topics.GAIT_PHASE, topics.ASSISTANCE_REQUEST, topics.TORQUE_COMMAND,
                                            topics.TORQUE_WRENCH, topics.SAFETY_STATE)}
    ros_rx: list = []
    rcl_node = None
    if importlib.util.find_spec("rclpy") is not None:
        import rclpy
        from sensor_msgs.msg import JointState

        rclpy.init()
        rcl_node = rclpy.create_node("dds_interop_probe")
        rcl_node.create_subscription(JointState, topics.TORQUE_COMMAND, ros_rx.append, 50)
    out: dict = {}
    with DdsTransport() as dds:
        for t in got:
            dds.reader(t)
        end = time.monotonic() + 4.5
        while time.monotonic() < end:
            for t in got:
                got[t] += dds.take(t)
            if rcl_node is not None:
                rclpy.spin_once(rcl_node, timeout_sec=0.005)
            else:
                time.sleep(0.005)
    pub_out, pub_err = pub.communicate(timeout=30)
    out["publisher_rc"] = pub.returncode
    out["publisher"] = json.loads(pub_out.strip().splitlines()[-1]) if pub_out.strip() else pub_err[-2000:]
    out["counts"] = {t: len(v) for t, v in got.items()}
    decoded_ok = 0
    for t, samples in got.items():
        for s in samples:
            msg = ts.deserialize(s.serialize(), ts_type(t))
            assert ts.serialize(msg) == s.serialize()
            decoded_ok += 1
    out["decoded_ok"] = decoded_ok
    cmds = [(s.header.stamp.sec * 10**9 + s.header.stamp.nanosec, s.name, list(s.effort)) for s in got[topics.TORQUE_COMMAND]]
    out["names"] = sorted({tuple(n)[0] for _t, n, _e in cmds})
    out["max_abs_nm"] = max((abs(e[0]) for _t, _n, e in cmds), default=0.0)
    out["last_nm"] = cmds[-1][2] if cmds else None
    out["states"] = [s.data for s in got[topics.SAFETY_STATE]]
    out["ros_received"] = len(ros_rx) if rcl_node is not None else None
    out["ros_max_abs_nm"] = max((abs(m.effort[0]) for m in ros_rx), default=0.0) if ros_rx else None
    if rcl_node is not None:
        rcl_node.destroy_node()
        rclpy.shutdown()
    return out


def ts_type(topic: str) -> str:
    from runtime.ros2 import topics

    return topics.TYPES[topic]


def test_cyclone_subscriber_in_another_process_receives_the_chain_without_rclpy() -> None:
    from firmware_bridge.netns import netns_available, run_isolated

    ok, why = netns_available()
    if not ok:
        pytest.skip(why)
    r = run_isolated([sys.executable, __file__, "child"], timeout=120, cwd=str(REPO),
                     env={**os.environ, "PYTHONPATH": str(REPO)})
    open("/tmp/dds_child_err.txt", "w").write(r.stderr)
    assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-3000:])
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["publisher_rc"] == 0 and res["publisher"]["rclpy_loaded"] is False
    n = res["publisher"]["cycles"]
    for topic, count in res["counts"].items():
        if topic != "/exo/safety/state":
            assert count >= 0.8 * n, (topic, count, n)       # reliable QoS: (almost) every cycle arrives
    assert res["decoded_ok"] == sum(res["counts"].values())
    assert res["names"] == ["knee_r"]
    # subject assistance 0.3 x 15 N*m peak, within the device's 18 N*m limit, then faded to exactly zero
    assert 1.0 < res["max_abs_nm"] <= 4.5 + 1e-9 and res["last_nm"] == [0.0]
    assert res["states"][-3:] == ["ACTIVE", "FADING", "INACTIVE"]
    if res["ros_received"] is not None:                       # a ROS 2 node (Fast DDS) sees the same topic
        assert res["ros_received"] >= 0.5 * n and 1.0 < res["ros_max_abs_nm"] <= 4.5 + 1e-9


if __name__ == "__main__" and sys.argv[1:] == ["child"]:
    print(json.dumps(_child()), flush=True)
