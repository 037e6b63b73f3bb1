"""Opt-in live view: the running pipeline's figures streamed to Foxglove over ``foxglove-sdk``'s WebSocket server.

The server binds to the loopback interface only (``127.0.0.1`` by default; an engineer on another machine uses
an SSH tunnel), on a configurable port (default 8765, Foxglove's). Each channel is JSON with a JSON schema whose
properties name the fields and their units; ``launch/foxglove_layout.json`` is a ready layout for these channels
(angles, KAM/KEM, KCF, torque, faults, and the gait-retraining feedback of :mod:`runtime.report.gait_retraining`).

:meth:`LiveView.publish` is safe to call from a control loop: it never blocks, never raises on a bad record, and
never touches the network. It appends to a bounded queue; when the queue is full the *oldest* record is dropped
and counted (``dropped_oldest``). A sender thread turns records into JSON messages and hands them to the
server, which itself keeps a bounded per-client backlog (a slow viewer loses old data, never stalls the loop).

:func:`recorded_events` + :func:`replay` play a recorded run (or an ``exo analyze`` log) into the live view
(``exo live-view RUN``), feeding the gait-retraining feedback as the live pipeline would.

Units on the channels are those of the telemetry: angles rad (the layout shows degrees with Foxglove's
``.@degrees``), moments %BW*ht, forces N, torque N*m, times ns since the epoch in ``timestamp``.
"""
from __future__ import annotations

import collections
import ipaddress
import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

LIVE_PREFIX = "/exo/live"
DEFAULT_PORT = 8765
#: Sender thread poll period when the queue is empty (s).
POLL_S = 0.005


@dataclass(frozen=True)
class LiveChannel:
    """A JSON channel: its topic, the fields it is known to carry (more are allowed) and their unit."""

    topic: str
    title: str
    fields: tuple[str, ...]
    unit: str
    numeric: bool = True

    def json_schema(self) -> dict[str, Any]:
        stamp = {"type": "object", "properties": {"sec": {"type": "integer"}, "nsec": {"type": "integer"}},
                 "description": "time of the sample (since the Unix epoch)"}
        kind = {"type": "number"} if self.numeric else {}
        props: dict[str, Any] = {"timestamp": stamp}
        for f in self.fields:
            props[f] = {**kind, "description": self.unit}
        return {"type": "object", "title": self.title, "properties": props, "additionalProperties": True}


DEFAULT_CHANNELS: tuple[LiveChannel, ...] = (
    LiveChannel(f"{LIVE_PREFIX}/joint_angles", "joint angles",
                ("hip_flexion_r", "knee_angle_r", "ankle_angle_r", "hip_flexion_l", "knee_angle_l", "ankle_angle_l"),
                "rad"),
    LiveChannel(f"{LIVE_PREFIX}/knee_moments", "knee adduction / extension moment",
                ("kam_r", "kem_r", "kam_l", "kem_l"), "%BW*ht (100*M/(m*g*h))"),
    LiveChannel(f"{LIVE_PREFIX}/kcf", "knee contact force", ("medial", "lateral", "total"), "N"),
    LiveChannel(f"{LIVE_PREFIX}/torque", "knee torque: commanded after safety, delivered by the drive",
                ("commanded_knee_r", "delivered_knee_r", "requested_knee_r"), "N*m"),
    LiveChannel(f"{LIVE_PREFIX}/faults", "faults", ("source", "kind", "value", "latched", "detail"),
                "value: unit of the fault kind", numeric=False),
    LiveChannel(f"{LIVE_PREFIX}/gait_retraining", "per-stride peak KAM against the walker's baseline",
                ("stride", "peak_kam", "baseline_kam", "change_pct", "category", "level", "stride_s"),
                "peak_kam, baseline_kam %BW*ht; change_pct %; level -1 baseline, 0 green, 1 amber, 2 red",
                numeric=False),
)


class DropOldestQueue:
    """Bounded FIFO for one producer: ``put`` never blocks; when full it drops the oldest item and counts it."""

    def __init__(self, capacity: int) -> None:
        if not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"queue_capacity must be a positive integer, got {capacity!r}")
        self.capacity = capacity
        self.dropped_oldest = 0
        self._q: collections.deque = collections.deque()

    def put(self, item: Any) -> None:
        q = self._q
        if len(q) >= self.capacity:
            try:
                q.popleft()
                self.dropped_oldest += 1
            except IndexError:  # the consumer emptied it meanwhile
                pass
        q.append(item)

    def get(self) -> Any:
        """The oldest item; raises IndexError when empty."""
        return self._q.popleft()

    def __len__(self) -> int:
        return len(self._q)


def _check_host(host: str) -> str:
    if host == "localhost":
        return host
    try:
        ok = ipaddress.ip_address(host).is_loopback
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"live view host = {host!r}: must be a loopback address (127.0.0.1, ::1 or localhost); "
                         "reach it from elsewhere through an SSH tunnel")
    return host


def _json_value(v: Any) -> Any:
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, int):
        return int(v)
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    return f if math.isfinite(f) else None


def to_message(t_ns: int, values: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON message of one record: ``timestamp`` {sec, nsec} plus each value (non-finite numbers -> null)."""
    sec, nsec = divmod(int(t_ns), 1_000_000_000)
    msg: dict[str, Any] = {"timestamp": {"sec": sec, "nsec": nsec}}
    for k, v in values.items():
        msg[str(k)] = _json_value(v)
    return msg


class LiveView:
    """Foxglove WebSocket server on loopback with the live channels; ``publish`` never blocks.

    Use::

        with LiveView(port=8765) as live:
            live.publish("/exo/live/knee_moments", time.time_ns(), {"kam_r": 2.1, "kem_r": 0.4})

    Counters: ``sent`` messages handed to the server, ``dropped_oldest`` records pushed out of the full queue,
    ``unknown_topic`` records for a topic that is not a channel, ``dropped_closed`` records published while
    not running, ``send_errors`` records the server refused (e.g. not JSON-serialisable).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                 channels: tuple[LiveChannel, ...] = DEFAULT_CHANNELS, queue_capacity: int = 1024,
                 name: str = "exo live view") -> None:
        self.host = _check_host(host)
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"live view port = {port!r}: must be an integer 0..65535 (0: any free port)")
        topics = [c.topic for c in channels]
        if len(set(topics)) != len(topics):
            raise ValueError(f"live view channels: duplicate topics in {topics}")
        self.requested_port = port
        self.channels = {c.topic: c for c in channels}
        self.name = name
        self._queue = DropOldestQueue(queue_capacity)
        self.sent = 0
        self.unknown_topic = 0
        self.dropped_closed = 0
        self.send_errors = 0
        self._running = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._server: Any = None
        self._fg_channels: dict[str, Any] = {}
        self._context: Any = None

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> LiveView:
        """Start the server and the sender thread; returns self."""
        if self._thread is not None:
            raise RuntimeError("LiveView already started")
        import foxglove

        ctx = self._context = foxglove.Context()  # kept: the server stops seeing channels once it is collected
        for topic, ch in self.channels.items():
            self._fg_channels[topic] = foxglove.Channel(topic, schema=ch.json_schema(), context=ctx,
                                                        metadata={"unit": ch.unit})
        try:
            self._server = foxglove.start_server(name=self.name, host=self.host, port=self.requested_port,
                                                 context=ctx)
        except Exception as exc:  # the SDK raises its own error types
            raise RuntimeError(f"live view: cannot serve on {self.host}:{self.requested_port}: {exc}") from exc
        self._running = True
        self._thread = threading.Thread(target=self._run, name="live-view-sender", daemon=True)
        self._thread.start()
        return self

    @property
    def port(self) -> int:
        """The port the server listens on (the requested one, or the one chosen for port 0)."""
        if self._server is None:
            raise RuntimeError("LiveView not started")
        return int(self._server.port)

    def close(self) -> None:
        """Send what is queued, stop the thread and the server."""
        self._running = False
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        if self._server is not None:
            self._server.stop()
            self._server = None
        for ch in self._fg_channels.values():
            ch.close()
        self._fg_channels.clear()
        self._context = None

    def __enter__(self) -> LiveView:
        return self if self._thread is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- producer side --------------------------------------------------------------------------
    def publish(self, topic: str, t_ns: int, values: Mapping[str, Any]) -> bool:
        """Queue *values* (field -> number/str/bool) for *topic* at *t_ns* (ns since the epoch).

        Never blocks, never raises: returns False (and counts) when not running or the topic is unknown; when the
        queue is full the oldest queued record is dropped (``dropped_oldest``) and this one is kept."""
        return self._enqueue(topic, t_ns, values)

    def publish_named(self, topic: str, t_ns: int, names: Any, values: Any) -> bool:
        """Like :meth:`publish` with parallel sequences (e.g. a JointState's ``name`` and ``position``); the
        dict is built in the sender thread, not in the caller's."""
        return self._enqueue(topic, t_ns, (names, values))

    def _enqueue(self, topic: str, t_ns: int, payload: Any) -> bool:
        """Queue one record unless closed or the topic is unknown (each counted)."""
        if not self._running:
            self.dropped_closed += 1
            return False
        if topic not in self.channels:
            self.unknown_topic += 1
            return False
        self._queue.put((topic, t_ns, payload))
        return True

    @property
    def dropped_oldest(self) -> int:
        return self._queue.dropped_oldest

    def stats(self) -> dict[str, int]:
        return {"sent": self.sent, "dropped_oldest": self.dropped_oldest, "unknown_topic": self.unknown_topic,
                "dropped_closed": self.dropped_closed, "send_errors": self.send_errors, "queued": len(self._queue)}

    # -- sender thread --------------------------------------------------------------------------
    def _drain(self) -> None:
        while True:
            try:
                topic, t_ns, values = self._queue.get()
            except IndexError:
                return
            try:
                if isinstance(values, tuple):
                    names, vals = values
                    values = dict(zip(names, vals, strict=True))
                self._fg_channels[topic].log(to_message(t_ns, values), log_time=int(t_ns))
                self.sent += 1
            except Exception:  # a record the SDK cannot encode: counted, the stream goes on
                self.send_errors += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            self._drain()
            time.sleep(POLL_S)
        self._drain()


# -- replay of a recorded run into the live view ------------------------------------------------------------------

_KNEE_MOMENT_ALIASES = {"knee_adduction_moment_right_pct_bw_ht": "kam_r", "knee_extension_moment_right_pct_bw_ht": "kem_r",
                        "knee_adduction_moment_left_pct_bw_ht": "kam_l", "knee_extension_moment_left_pct_bw_ht": "kem_l"}


def recorded_events(run: Any) -> list[tuple[int, str, dict[str, Any]]]:
    """A recorded run (or ``exo analyze`` log) as time-ordered live-view records ``(log_ns, topic, values)``.

    Joint angles, knee moments (offline names mapped to kam_/kem_), KCF, torque (requested/commanded per joint with
    the drive's delivered torque) and faults; the vertical GRF per side is carried as ``fz_r``/``fz_l`` on the
    knee-moment records for heel-strike segmentation."""
    from runtime.report.html import ANGLE_TOPICS, KCF_TOPICS, KNEE_MOMENT_TOPICS, first_stream, grf_topics
    from runtime.report.summary import joint_series, load_series

    series = load_series(run)
    streams = series["streams"]
    out: list[tuple[int, str, dict[str, Any]]] = []
    for topics, live_topic, field in ((ANGLE_TOPICS, f"{LIVE_PREFIX}/joint_angles", "position"),
                                      (KNEE_MOMENT_TOPICS, f"{LIVE_PREFIX}/knee_moments", "effort"),
                                      (KCF_TOPICS, f"{LIVE_PREFIX}/kcf", "effort")):
        _, st = first_stream(streams, topics)
        if st is None:
            continue
        names, tns, vals = joint_series(st, field)
        names = [_KNEE_MOMENT_ALIASES.get(n, n) for n in names]
        for t, row in zip(tns.tolist(), vals):
            out.append((t, live_topic, dict(zip(names, row.tolist()))))
    fz = {}
    for side in ("r", "l"):
        _, st = first_stream(streams, grf_topics("grf", side))
        if st is not None:
            fz[side] = dict(zip(st["log_ns"], (f[2] for f in st["xyz"])))
    if fz:
        for t, topic, values in out:
            if topic.endswith("/knee_moments"):
                for side, by_t in fz.items():
                    if t in by_t:
                        values[f"fz_{side}"] = by_t[t]
    c, js = series["command"], series["joint_states"]
    joints = series["joint_names"]
    delivered = dict(zip(js["log_ns"], js["effort"])) if js["log_ns"] else {}
    for t, req, com in zip(c["log_ns"], c.get("requested", []), c.get("commanded", [])):
        v = {f"requested_{j}": float(req[i]) for i, j in enumerate(joints)}
        v.update({f"commanded_{j}": float(com[i]) for i, j in enumerate(joints)})
        if t in delivered and len(delivered[t]) == len(joints):
            v.update({f"delivered_{j}": float(delivered[t][i]) for i, j in enumerate(joints)})
        out.append((t, f"{LIVE_PREFIX}/torque", v))
    for e in series["events"]:
        out.append((e["log_ns"], f"{LIVE_PREFIX}/faults", {k: e[k] for k in ("source", "kind", "value", "latched",
                                                                             "detail")}))
    out.sort(key=lambda r: r[0])
    return out


def replay(events: list[tuple[int, str, dict[str, Any]]], live: LiveView, speed: float = 1.0, gait: Any = None,
           side: str = "r", stop: threading.Event | None = None) -> int:
    """Publish recorded *events* into *live*, paced at *speed* x real time (0: as fast as possible), feeding the
    side's KAM (and vertical GRF, when recorded) to *gait* (a :class:`runtime.report.gait_retraining.GaitRetraining`
    publishing on the same live view). Returns the number of records published."""
    if side not in ("r", "l"):
        raise ValueError(f"side = {side!r}: must be 'r' or 'l'")
    if speed < 0 or not math.isfinite(speed):
        raise ValueError(f"speed = {speed!r}: must be >= 0 (0: as fast as possible)")
    if not events:
        return 0
    t0_log, t0_wall = events[0][0], time.monotonic()
    n = 0
    for t, topic, values in events:
        if stop is not None and stop.is_set():
            break
        if speed > 0:
            delay = (t - t0_log) * 1e-9 / speed - (time.monotonic() - t0_wall)
            if delay > 0:
                time.sleep(delay)
        n += live.publish(topic, t, values)
        if gait is not None and topic.endswith("/knee_moments") and f"kam_{side}" in values:
            kam = values[f"kam_{side}"]
            gait.update(t, kam, values.get(f"fz_{side}"))
    return n
