"""Live view: the Foxglove WebSocket server on loopback, its JSON channels, the drop-oldest queue, the layout file.

The server test runs in a child process inside a private network namespace (``firmware_bridge/netns.py``: only ``lo``),
connects with the ``websockets`` client speaking the Foxglove WebSocket protocol, subscribes to every channel
and checks that what was published arrives: the binary message header (subscription id, log time) and the JSON.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _support import REPO  # noqa: E402

from firmware_bridge import netns  # noqa: E402
from runtime.telemetry.live_view import DEFAULT_CHANNELS, DropOldestQueue, LiveView, to_message  # noqa: E402

CHILD = r'''
import asyncio, json, struct, sys, time
import numpy as np
import websockets
from firmware_bridge import netns
from runtime.report.gait_retraining import GaitRetraining
from runtime.telemetry.live_view import LiveView

assert netns.in_private_netns(), netns.interfaces()
T = 1_700_000_000_123_456_789
payloads = {
    "/exo/live/knee_moments": {"kam_r": 2.5, "kem_r": -0.5, "kam_l": float("nan")},
    "/exo/live/kcf": {"medial": 1800.0, "lateral": 900.0, "total": 2700.0},
    "/exo/live/torque": {"commanded_knee_r": 4.0, "delivered_knee_r": 3.9956},
    "/exo/live/faults": {"source": "safety", "kind": "overtorque", "value": 25.0, "latched": True, "detail": "x"},
}
out = {"received": {}, "advertised": {}}
with LiveView(port=0, queue_capacity=64) as live:
    gait = GaitRetraining(baseline_kam=3.0, live=live)
    async def main():
        async with websockets.connect(f"ws://127.0.0.1:{live.port}",
                                      subprotocols=["foxglove.sdk.v1", "foxglove.websocket.v1"]) as ws:
            out["subprotocol"] = ws.subprotocol
            sub_topic = {}
            deadline = time.monotonic() + 20
            published = 0
            while time.monotonic() < deadline and len(out["received"]) < len(live.channels):
                if sub_topic:
                    for topic, values in payloads.items():
                        published += live.publish(topic, T, values)
                    published += live.publish_named("/exo/live/joint_angles", T, ("knee_angle_r", "hip_flexion_r"),
                                                    np.array([0.5, -0.1]))
                    for k in range(30):  # one stance of 0.48 s peaking at 2.4 %BW*ht (-20 %): a green stride
                        kam = 1.8 * (1 - abs(k - 15) / 15) + 0.6 if k < 29 else 0.0
                        gait.update(T + k * 16_666_667, kam)
                try:
                    m = await asyncio.wait_for(ws.recv(), 0.05)
                except asyncio.TimeoutError:
                    continue
                if isinstance(m, str):
                    d = json.loads(m)
                    if d.get("op") == "advertise":
                        subs = []
                        for i, c in enumerate(d["channels"]):
                            out["advertised"][c["topic"]] = {"encoding": c["encoding"], "schema": json.loads(c["schema"])}
                            sub_topic[100 + i] = c["topic"]
                            subs.append({"id": 100 + i, "channelId": c["id"]})
                        await ws.send(json.dumps({"op": "subscribe", "subscriptions": subs}))
                elif m[0] == 1:
                    sub_id, t = struct.unpack_from("<IQ", m, 1)
                    out["received"].setdefault(sub_topic[sub_id], [t, json.loads(m[13:])])
            out["accepted"] = published + len(gait.strides)
    asyncio.run(main())
    out["mismatch_accepted"] = live.publish_named("/exo/live/kcf", T, ("medial", "lateral"), [1.0])
    time.sleep(0.1)
    out["stats"] = live.stats()
    out["unknown"] = live.publish("/exo/live/nope", T, {"x": 1.0})
    out["stats_after"] = live.stats()
print("RESULT " + json.dumps(out))
'''


def test_server_streams_every_channel_in_private_netns():
    try:
        cmd = netns.wrap_command([sys.executable, "-c", CHILD])
    except RuntimeError as exc:
        pytest.fail(str(exc))
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=90)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    line = [x for x in r.stdout.splitlines() if x.startswith("RESULT ")][-1]
    out = json.loads(line[len("RESULT "):])
    assert out["subprotocol"] in ("foxglove.sdk.v1", "foxglove.websocket.v1")
    topics = {c.topic for c in DEFAULT_CHANNELS}
    assert set(out["advertised"]) == topics
    for c in DEFAULT_CHANNELS:
        adv = out["advertised"][c.topic]
        assert adv["encoding"] == "json"
        assert set(c.fields) <= set(adv["schema"]["properties"])
    rec = out["received"]
    assert set(rec) == topics, sorted(rec)
    T = 1_700_000_000_123_456_789
    t, msg = rec["/exo/live/knee_moments"]
    assert t == T and msg["timestamp"] == {"sec": T // 10**9, "nsec": T % 10**9}
    assert msg["kam_r"] == 2.5 and msg["kem_r"] == -0.5 and msg["kam_l"] is None  # NaN -> null
    assert rec["/exo/live/faults"][1]["kind"] == "overtorque" and rec["/exo/live/faults"][1]["latched"] is True
    assert rec["/exo/live/torque"][1]["delivered_knee_r"] == pytest.approx(3.9956)
    gait = rec["/exo/live/gait_retraining"][1]
    assert gait["category"] == "green" and gait["level"] == 0 and gait["peak_kam"] == pytest.approx(2.4)
    assert gait["baseline_kam"] == 3.0 and gait["change_pct"] == pytest.approx(-20.0)
    st = out["stats"]
    assert rec["/exo/live/joint_angles"][1]["knee_angle_r"] == 0.5  # publish_named: names zipped in the sender
    # a names/values length mismatch is accepted by publish (cheap) and counted by the sender, not raised
    assert out["mismatch_accepted"] is True and st["send_errors"] == 1 and st["unknown_topic"] == 0
    assert st["sent"] + st["dropped_oldest"] + st["queued"] + st["send_errors"] == out["accepted"] + 1
    assert out["unknown"] is False and out["stats_after"]["unknown_topic"] == 1


def test_drop_oldest_queue_counts_and_keeps_newest():
    q = DropOldestQueue(3)
    for i in range(5):
        q.put(i)
    assert q.dropped_oldest == 2 and len(q) == 3
    assert [q.get(), q.get(), q.get()] == [2, 3, 4]
    with pytest.raises(IndexError):
        q.get()
    with pytest.raises(ValueError, match="queue_capacity"):
        DropOldestQueue(0)


def test_publish_before_start_is_counted_not_raised():
    live = LiveView(port=0)
    assert live.publish("/exo/live/kcf", 1, {"medial": 1.0}) is False
    assert live.stats()["dropped_closed"] == 1
    with pytest.raises(RuntimeError, match="not started"):
        _ = live.port


@pytest.mark.parametrize("kwargs, field", [({"host": "0.0.0.0"}, "host = '0.0.0.0'"),
                                           ({"host": "192.168.1.5"}, "host = '192.168.1.5'"),
                                           ({"port": 70000}, "port = 70000"),
                                           ({"queue_capacity": 0}, "queue_capacity")])
def test_bad_settings_named(kwargs, field):
    with pytest.raises(ValueError, match=field):
        LiveView(**kwargs)


def test_message_conversion():
    m = to_message(2_000_000_123, {"a": np.float32(1.5), "b": math.inf, "c": "x", "d": True, "e": np.int64(3)})
    assert m == {"timestamp": {"sec": 2, "nsec": 123}, "a": 1.5, "b": None, "c": "x", "d": True, "e": 3.0}
    json.dumps(m, allow_nan=False)


def _leaves(node):
    if isinstance(node, str):
        return [node]
    return _leaves(node["first"]) + _leaves(node["second"])


def test_layout_file_matches_the_channels():
    layout = json.loads((REPO / "launch" / "foxglove_layout.json").read_text())
    panels = layout["configById"]
    assert sorted(_leaves(layout["layout"])) == sorted(panels)
    fields = {c.topic: set(c.fields) for c in DEFAULT_CHANNELS}
    used = set()
    for pid, cfg in panels.items():
        paths = [p["value"] for p in cfg.get("paths", [])] + [cfg[k] for k in ("path", "topicPath") if k in cfg]
        assert paths, pid
        for path in paths:
            topic, _, rest = path.partition(".")
            assert topic in fields, (pid, path)
            used.add(topic)
            if rest:
                assert rest.split(".")[0] in fields[topic], (pid, path)
    assert used == set(fields)


REPLAY_CHILD = r'''
import asyncio, json, struct, sys, tempfile, threading, time
from pathlib import Path
import websockets
sys.path.insert(0, "tests")
from _run_fixture import write_run
from runtime.report.gait_retraining import GaitRetraining
from runtime.telemetry.live_view import LiveView, recorded_events, replay

truth = write_run(Path(tempfile.mkdtemp()) / "run", seconds=3.0)
events = recorded_events(truth.run_dir)
baseline = 3.5
out = {"gait": [], "t_est_s": truth.t_est_s.tolist(), "kam_r": truth.kam_r.tolist(), "baseline": baseline}
with LiveView(port=0, queue_capacity=4096) as live:
    gait = GaitRetraining(baseline_kam=baseline, live=live)
    async def main():
        async with websockets.connect(f"ws://127.0.0.1:{live.port}", subprotocols=["foxglove.sdk.v1"]) as ws:
            ids, ready, started = {}, False, None
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and len(out["gait"]) < 3:
                if ids and not ready:
                    live.publish("/exo/live/faults", 1, {"kind": "probe"})
                try:
                    m = await asyncio.wait_for(ws.recv(), 0.05)
                except asyncio.TimeoutError:
                    continue
                if isinstance(m, str):
                    d = json.loads(m)
                    if d.get("op") == "advertise":
                        want = [c for c in d["channels"] if c["topic"] in ("/exo/live/faults", "/exo/live/gait_retraining")]
                        for c in want:
                            ids[c["id"]] = c["topic"]
                        await ws.send(json.dumps({"op": "subscribe", "subscriptions": [{"id": c["id"], "channelId": c["id"]} for c in want]}))
                elif m[0] == 1:
                    sub, t = struct.unpack_from("<IQ", m, 1)
                    msg = json.loads(m[13:])
                    if ids[sub] == "/exo/live/faults" and not ready:
                        ready = True
                        started = threading.Thread(target=replay, args=(events, live), kwargs={"speed": 0, "gait": gait})
                        started.start()
                    elif ids[sub] == "/exo/live/gait_retraining":
                        out["gait"].append(msg)
            if started:
                started.join()
    asyncio.run(main())
    out["stats"] = live.stats()
print("RESULT " + json.dumps(out))
'''


def test_replayed_run_gives_per_stride_feedback_on_the_live_channel():
    """A recorded run (the fixture) replayed into the live view: each right-leg stance's peak KAM arrives on
    /exo/live/gait_retraining with its change against a stored baseline, equal to the recording's maxima."""
    try:
        cmd = netns.wrap_command([sys.executable, "-c", REPLAY_CHILD])
    except RuntimeError as exc:
        pytest.fail(str(exc))
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = json.loads([x for x in r.stdout.splitlines() if x.startswith("RESULT ")][-1][len("RESULT "):])
    t, kam = np.asarray(out["t_est_s"]), np.asarray(out["kam_r"])
    stride_s = 1.1  # the fixture's stride period; right stance is the first 60 % of each stride
    expected = [kam[(t >= k * stride_s) & (t < (k + 0.6) * stride_s)].max() for k in range(3)]
    got = sorted(out["gait"], key=lambda m: m["stride"])
    assert [m["stride"] for m in got] == [1, 2, 3]
    for m, e in zip(got, expected):
        assert m["peak_kam"] == pytest.approx(e, rel=1e-12)
        assert m["change_pct"] == pytest.approx(100 * (e - out["baseline"]) / out["baseline"], rel=1e-9)
        assert m["category"] == "green"  # about -20 % against the stored 3.5 %BW*ht
    assert out["stats"]["send_errors"] == 0 and out["stats"]["dropped_oldest"] == 0
