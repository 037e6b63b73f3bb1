"""Frame sources for the vision front end, and the latest-frame policy.

Every source yields :class:`Frame`: an RGB ``uint8`` image (H, W, 3) — OpenCV's BGR is converted
here, at the source — with its capture time ``t_capture_ns`` and its index in the source.

Capture times:

* camera: ``time.monotonic_ns()`` when the driver handed the frame over (``grab()`` returned);
* video file: the file's own timeline (presentation time, ``CAP_PROP_POS_MSEC``) — not wall time;
* image folder: ``index / fps`` (the folder has no timeline; ``fps`` is given);
* ROS 2 topic / MCAP replay: the message's ``header.stamp``.

:class:`LatestFrameGrabber` runs a source in its own thread and keeps only the newest frame (a
queue of one): when the consumer is slower than the source, older frames are replaced and each
replacement is counted (``dropped``, with the dropped indices kept). Sources can be paced to
their nominal rate (``pace=True``: a file replays in real time, as a camera would deliver it).
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: Highest nominal input rate accepted (Hz).
MAX_RATE_HZ = 120.0
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class Frame:
    """One RGB frame: ``image`` (H, W, 3) uint8 RGB, ``t_capture_ns`` (ns, see module doc), ``index``
    (0-based position in the source), ``source`` (a short description)."""

    image: np.ndarray
    t_capture_ns: int
    index: int
    source: str = ""


def _check_rate(field_name: str, rate_hz: float) -> float:
    if not (np.isfinite(rate_hz) and 0.0 < rate_hz <= MAX_RATE_HZ):
        raise ValueError(f"{field_name}: must be within (0, {MAX_RATE_HZ:g}] Hz, got {rate_hz}")
    return float(rate_hz)


def _bgr_to_rgb(image: np.ndarray) -> np.ndarray:
    import cv2

    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_video_frames(path: str | Path, indices) -> dict[int, np.ndarray]:
    """RGB frames ``indices`` (frame numbers from 0) of a video file, read in one pass; frames past the end are
    absent from the result (the caller decides whether that is an error)."""
    import cv2

    wanted = set(int(i) for i in indices)
    out: dict[int, np.ndarray] = {}
    if not wanted:
        return out
    cap = cv2.VideoCapture(str(path))
    try:
        i, last = 0, max(wanted)
        while i <= last:
            ok, bgr = cap.read()
            if not ok:
                break
            if i in wanted:
                out[i] = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            i += 1
    finally:
        cap.release()
    return out


class FrameSource:
    """Base class: iterate to get :class:`Frame` objects; ``read()`` returns None at the end."""

    #: nominal frame rate (Hz) of the source, or None when unknown
    fps: float | None = None
    name: str = "source"

    def read(self) -> Frame | None:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        """Release the device/file."""

    def __iter__(self) -> Iterator[Frame]:
        while True:
            f = self.read()
            if f is None:
                return
            yield f

    def __enter__(self) -> "FrameSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class VideoFileSource(FrameSource):
    """A video file through OpenCV/FFmpeg; timestamps are the file's presentation times (ns)."""

    def __init__(self, path: str | Path, start: int = 0, stop: int | None = None, step: int = 1) -> None:
        import cv2

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"video: no such file {self.path}")
        if start < 0 or step < 1 or (stop is not None and stop < start):
            raise ValueError(f"video: need 0 <= start <= stop and step >= 1, got start={start} stop={stop} step={step}")
        self._cap = cv2.VideoCapture(str(self.path))
        if not self._cap.isOpened():
            raise ValueError(f"video: OpenCV cannot open {self.path}")
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and np.isfinite(fps) and fps > 0 else None
        self.width = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.frame_count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self.name = f"video:{self.path.name}"
        self._next = 0
        self.start, self.stop, self.step = int(start), stop, int(step)

    def read(self) -> Frame | None:
        import cv2

        while True:
            if self.stop is not None and self._next >= self.stop:
                return None
            if not self._cap.grab():
                return None
            index = self._next
            self._next += 1
            if index < self.start or (index - self.start) % self.step:
                continue
            pos_ms = self._cap.get(cv2.CAP_PROP_POS_MSEC)
            ok, bgr = self._cap.retrieve()
            if not ok:
                return None
            if pos_ms is None or not np.isfinite(pos_ms) or (pos_ms <= 0 and index > 0):
                if self.fps is None:
                    raise ValueError(f"video: {self.path} has neither frame timestamps nor a frame rate")
                pos_ms = 1000.0 * index / self.fps
            return Frame(_bgr_to_rgb(bgr), int(round(pos_ms * 1e6)), index, self.name)

    def close(self) -> None:
        self._cap.release()


class ImageFolderSource(FrameSource):
    """Images of a folder in name order; timestamps ``index / fps`` (ns)."""

    def __init__(self, folder: str | Path, fps: float = 30.0) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise FileNotFoundError(f"image folder: no such folder {self.folder}")
        self.fps = _check_rate("fps", fps)
        self.files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise ValueError(f"image folder: no images ({', '.join(IMAGE_SUFFIXES)}) in {self.folder}")
        self.name = f"folder:{self.folder.name}"
        self._i = 0

    def read(self) -> Frame | None:
        import cv2

        if self._i >= len(self.files):
            return None
        path = self.files[self._i]
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"image folder: cannot decode {path}")
        index = self._i
        self._i += 1
        return Frame(_bgr_to_rgb(bgr), int(round(index * 1e9 / self.fps)), index, self.name)


class CameraSource(FrameSource):
    """A camera through ``cv2.VideoCapture(device)``; timestamp = monotonic time when the frame arrived."""

    def __init__(self, device: int = 0, width: int | None = None, height: int | None = None,
                 fps: float | None = None) -> None:
        import cv2

        if not isinstance(device, int) or device < 0:
            raise ValueError(f"camera: device must be a non-negative integer index, got {device!r}")
        self._cap = cv2.VideoCapture(device)
        if not self._cap.isOpened():
            raise RuntimeError(f"camera: cannot open device {device} (/dev/video{device})")
        if width:
            self._cap.set(cv2.CAP_PROP_FRAME_WIDTH, int(width))
        if height:
            self._cap.set(cv2.CAP_PROP_FRAME_HEIGHT, int(height))
        if fps is not None:
            self._cap.set(cv2.CAP_PROP_FPS, _check_rate("fps", fps))
        got = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(got) if got and got > 0 else None
        self.name = f"camera:{device}"
        self._i = 0

    def read(self) -> Frame | None:
        if not self._cap.grab():
            return None
        t = time.monotonic_ns()
        ok, bgr = self._cap.retrieve()
        if not ok:
            return None
        index = self._i
        self._i += 1
        return Frame(_bgr_to_rgb(bgr), t, index, self.name)

    def close(self) -> None:
        self._cap.release()


# -- ROS 2 image messages ---------------------------------------------------------------------

_ENCODINGS = {"rgb8": (3, False), "bgr8": (3, True), "rgba8": (4, False), "bgra8": (4, True), "mono8": (1, False)}


def image_msg_to_rgb(msg) -> np.ndarray:
    """A ``sensor_msgs/msg/Image`` (rclpy or rosbags object) → (H, W, 3) uint8 RGB.

    Supported encodings: rgb8, bgr8, rgba8, bgra8, mono8 (others raise ValueError naming them).
    """
    enc = str(msg.encoding).lower()
    if enc not in _ENCODINGS:
        raise ValueError(f"image.encoding: unsupported {msg.encoding!r}; supported: {', '.join(_ENCODINGS)}")
    ch, bgr = _ENCODINGS[enc]
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    data = np.frombuffer(bytes(msg.data) if not isinstance(msg.data, np.ndarray) else msg.data.tobytes(), np.uint8)
    if step < w * ch or data.size < h * step:
        raise ValueError(f"image.step: {step} with {data.size} bytes does not fit {w}x{h} {enc}")
    img = data[: h * step].reshape(h, step)[:, : w * ch].reshape(h, w, ch)
    if ch == 1:
        return np.repeat(img, 3, axis=2)
    if bgr:
        img = img[:, :, 2::-1]
    return np.ascontiguousarray(img[:, :, :3])


def compressed_msg_to_rgb(msg) -> np.ndarray:
    """A ``sensor_msgs/msg/CompressedImage`` (jpeg/png) → (H, W, 3) uint8 RGB."""
    import cv2

    data = np.frombuffer(bytes(msg.data) if not isinstance(msg.data, np.ndarray) else msg.data.tobytes(), np.uint8)
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"compressed image: cannot decode format {msg.format!r}")
    return _bgr_to_rgb(bgr)


def _stamp_ns(msg) -> int:
    s = msg.header.stamp
    return int(s.sec) * 1_000_000_000 + int(s.nanosec)


IMAGE_MSGTYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")


class McapImageSource(FrameSource):
    """Image messages of one topic in a rosbag2/MCAP log (ours: :mod:`runtime.telemetry.log`), in log order.

    Our logs only ever hold anonymised frames (the privacy gate), so replayed frames are too.
    Timestamps: ``header.stamp`` of each message (the capture time the writer put there).
    """

    def __init__(self, log: str | Path, topic: str) -> None:
        from runtime.telemetry.read import iter_messages

        self.log = Path(log)
        if not self.log.exists():
            raise FileNotFoundError(f"mcap: no such log {self.log}")
        self.topic = topic
        self.name = f"mcap:{topic}"
        self._it = iter_messages(self.log)
        self._i = 0
        self._seen_topics: set[str] = set()

    def read(self) -> Frame | None:
        for topic, msgtype, _log_ns, msg in self._it:
            self._seen_topics.add(topic)
            if topic != self.topic:
                continue
            if msgtype == "sensor_msgs/msg/Image":
                rgb = image_msg_to_rgb(msg)
            elif msgtype == "sensor_msgs/msg/CompressedImage":
                rgb = compressed_msg_to_rgb(msg)
            else:
                raise ValueError(f"mcap topic {topic!r}: type {msgtype} is not an image ({', '.join(IMAGE_MSGTYPES)})")
            index = self._i
            self._i += 1
            return Frame(rgb, _stamp_ns(msg), index, self.name)
        if self._i == 0:
            raise ValueError(f"mcap: topic {self.topic!r} not in {self.log}; topics: {sorted(self._seen_topics)}")
        return None


class Ros2ImageSource(FrameSource):
    """Subscribes to a ROS 2 ``sensor_msgs/msg/Image`` topic (rclpy imported lazily).

    A background executor thread receives messages; :meth:`read` returns the next one (blocking up
    to ``timeout_s``; None on timeout). DDS multicasts: run it in a private network namespace
    (:mod:`firmware_bridge.netns`) unless the ROS domain is configured for this host only.
    """

    def __init__(self, topic: str, node_name: str = "exo_frame_source", timeout_s: float = 1.0,
                 queue_depth: int = 2) -> None:
        import queue

        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        if timeout_s <= 0:
            raise ValueError(f"timeout_s: must be positive, got {timeout_s}")
        self._own_context = not rclpy.ok()
        if self._own_context:
            rclpy.init()
        self._node = rclpy.create_node(node_name)
        self._q: queue.Queue = queue.Queue(maxsize=max(1, int(queue_depth)))
        qos = QoSProfile(depth=max(1, int(queue_depth)), reliability=ReliabilityPolicy.BEST_EFFORT)
        self._sub = self._node.create_subscription(Image, topic, self._on_msg, qos)
        self._exec = SingleThreadedExecutor()
        self._exec.add_node(self._node)
        self._thread = threading.Thread(target=self._exec.spin, name="ros2-image-source", daemon=True)
        self._thread.start()
        self.timeout_s = float(timeout_s)
        self.name = f"ros2:{topic}"
        self.dropped = 0
        self._i = 0

    def _on_msg(self, msg) -> None:
        import queue

        try:
            self._q.put_nowait(msg)
        except queue.Full:
            self.dropped += 1

    def read(self) -> Frame | None:
        import queue

        try:
            msg = self._q.get(timeout=self.timeout_s)
        except queue.Empty:
            return None
        index = self._i
        self._i += 1
        return Frame(image_msg_to_rgb(msg), _stamp_ns(msg), index, self.name)

    def close(self) -> None:
        import rclpy

        self._exec.shutdown(timeout_sec=2.0)
        self._thread.join(timeout=2.0)
        self._node.destroy_node()
        if self._own_context and rclpy.ok():
            rclpy.shutdown()


class SyntheticSource(FrameSource):
    """Deterministic test pattern at ``rate_hz`` (≤ 120 Hz): frame ``i`` has its index in pixel (0, 0)
    (little-endian over the three channels) and timestamp ``i / rate_hz``; ``n`` frames in all."""

    def __init__(self, rate_hz: float, n: int, shape: tuple[int, int] = (48, 64)) -> None:
        self.fps = _check_rate("rate_hz", rate_hz)
        if n < 0 or n >= 1 << 24:
            raise ValueError(f"n: must be within 0..{(1 << 24) - 1}, got {n}")
        self.n, self.shape = int(n), (int(shape[0]), int(shape[1]))
        self.name = f"synthetic:{rate_hz:g}Hz"
        self._i = 0

    def read(self) -> Frame | None:
        if self._i >= self.n:
            return None
        i = self._i
        self._i += 1
        img = np.full((*self.shape, 3), (i * 37) % 256, np.uint8)
        img[0, 0] = (i & 0xFF, (i >> 8) & 0xFF, (i >> 16) & 0xFF)
        return Frame(img, int(round(i * 1e9 / self.fps)), i, self.name)

    @staticmethod
    def decode_index(image: np.ndarray) -> int:
        """The index written into pixel (0, 0)."""
        p = image[0, 0].astype(np.int64)
        return int(p[0] | (p[1] << 8) | (p[2] << 16))


#: default memory budget of :class:`PreloadedSource` (bytes): the 230-frame 1768x994 sports2d clip takes 1.21 GB
PRELOAD_BUDGET_BYTES = 3 << 30


class PreloadedSource(FrameSource):
    """A finite source decoded into memory up front, then replayed frame by frame (same frames, timestamps,
    indices, ``fps`` and ``name`` as ``source``).

    A camera hands the device decoded frames; a video file standing in for one costs a decode per frame that
    no camera asks of the device (9-10 ms of CPU per 1768x994 frame here, on the core the estimation and torque
    loops need). Decoding before the run's clock starts keeps that cost out of the live pipeline's budget
    (``exo demo --live-vision``; said in its report). ``budget_bytes`` bounds the memory: a longer or larger
    source is refused with a ``ValueError`` naming its size, before more than the budget is held.
    ``decode_s``: the wall time the decode took; ``bytes``: the memory the frames hold."""

    def __init__(self, source: FrameSource, budget_bytes: int = PRELOAD_BUDGET_BYTES) -> None:
        if isinstance(budget_bytes, bool) or not isinstance(budget_bytes, int) or budget_bytes <= 0:
            raise ValueError(f"budget_bytes: must be a positive int, got {budget_bytes!r}")
        self.fps, self.name = source.fps, source.name
        self.width, self.height = getattr(source, "width", None), getattr(source, "height", None)
        frames: list[Frame] = []
        held = 0
        t0 = time.perf_counter()
        try:
            while True:
                f = source.read()
                if f is None:
                    break
                held += f.image.nbytes
                if held > budget_bytes:
                    raise ValueError(f"preload: {source.name} needs more than budget_bytes = {budget_bytes} "
                                     f"({budget_bytes / 2**30:.2f} GiB) in memory: {len(frames) + 1} frames of "
                                     f"{f.image.shape} already take {held} bytes")
                frames.append(f)
        finally:
            source.close()
        self.decode_s = time.perf_counter() - t0
        self.bytes = held
        self.frame_count = len(frames)
        self._frames = frames
        self._i = 0

    def read(self) -> Frame | None:
        if self._i >= len(self._frames):
            return None
        f = self._frames[self._i]
        self._frames[self._i] = None  # type: ignore[call-overload]  # released once handed on
        self._i += 1
        return f

    def close(self) -> None:
        self._frames.clear()


# -- latest-frame policy ----------------------------------------------------------------------

@dataclass
class GrabberStats:
    """Counters of a :class:`LatestFrameGrabber`: ``produced`` = ``delivered`` + ``dropped`` + pending."""

    produced: int = 0
    delivered: int = 0
    dropped: int = 0
    dropped_indices: list[int] = field(default_factory=list)
    late_ns_max: int = 0
    #: why each dropped frame was dropped: what the consumer was doing when a newer frame replaced it
    #: (``busy_reason``), or "pending at close"
    dropped_by_reason: dict[str, int] = field(default_factory=dict)

    def drop(self, index: int, reason: str) -> None:
        """Count the frame ``index`` as dropped for ``reason``."""
        self.dropped += 1
        self.dropped_indices.append(index)
        self.dropped_by_reason[reason] = self.dropped_by_reason.get(reason, 0) + 1


class LatestFrameGrabber:
    """Reads ``source`` in a thread and hands the consumer only the newest frame (queue of one).

    ``pace=True`` releases frames at the source's nominal rate on an absolute schedule (a file or a
    synthetic source then behaves like a live camera); live sources pace themselves (use False).
    A frame replaced before the consumer took it is dropped and counted (index kept in
    ``stats.dropped_indices``); a frame still pending at :meth:`close` counts as dropped too.
    ``busy_reason()`` (optional) names what the consumer is doing; each drop is counted under it in
    ``stats.dropped_by_reason`` ("busy" without it).
    """

    def __init__(self, source: FrameSource, pace: bool = True, rate_hz: float | None = None,
                 busy_reason: Callable[[], str] | None = None) -> None:
        self.source = source
        self.busy_reason = busy_reason
        rate = rate_hz if rate_hz is not None else source.fps
        if pace:
            if rate is None:
                raise ValueError(f"rate_hz: {source.name} has no nominal rate; give rate_hz to pace it")
            rate = _check_rate("rate_hz", rate)
        self.pace, self.rate_hz = bool(pace), rate
        self.stats = GrabberStats()
        self._cond = threading.Condition()
        self._slot: Frame | None = None
        self._slot_due_ns = 0
        #: CLOCK_MONOTONIC ns at which the frame last returned by :meth:`get` was due (paced: its slot on the
        #: absolute schedule, as a camera would expose it; not paced: when it was read)
        self.last_due_ns = 0
        self._eof = False
        self._stop = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"grabber-{source.name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            t0 = 0
            period_ns = int(round(1e9 / self.rate_hz)) if self.pace else 0
            k = 0
            while not self._stop.is_set():
                frame = self.source.read()
                if frame is None:
                    break
                if k == 0:
                    t0 = time.monotonic_ns()    # the schedule starts with the first frame read (decoder opened)
                if self.pace:
                    due = t0 + k * period_ns
                    now = time.monotonic_ns()
                    if due > now:
                        self._stop.wait((due - now) / 1e9)
                    else:
                        self.stats.late_ns_max = max(self.stats.late_ns_max, now - due)
                k += 1
                due_ns = due if self.pace else time.monotonic_ns()
                with self._cond:
                    self.stats.produced += 1
                    if self._slot is not None:
                        self.stats.drop(self._slot.index, str(self.busy_reason()) if self.busy_reason else "busy")
                    self._slot, self._slot_due_ns = frame, due_ns
                    self._cond.notify_all()
        except BaseException as exc:  # reported to the consumer by get()
            self.error = exc
        finally:
            with self._cond:
                self._eof = True
                self._cond.notify_all()

    def get(self, timeout_s: float | None = None) -> Frame | None:
        """The newest frame not yet delivered; waits up to ``timeout_s`` (None: until one or the end).

        Returns None at the end of the source (or on timeout). Re-raises a source error.
        """
        with self._cond:
            self._cond.wait_for(lambda: self._slot is not None or self._eof, timeout=timeout_s)
            if self._slot is None:  # timed out, or the source is exhausted
                if self.error is not None:
                    raise RuntimeError(f"frame source {self.source.name} failed: {self.error}") from self.error
                return None
            frame, self._slot = self._slot, None
            self.last_due_ns = self._slot_due_ns
            self.stats.delivered += 1
            return frame

    @property
    def finished(self) -> bool:
        """True when the source is exhausted and no frame is pending."""
        with self._cond:
            return self._eof and self._slot is None

    def __iter__(self) -> Iterator[Frame]:
        while True:
            f = self.get()
            if f is None:
                return
            yield f

    def close(self) -> None:
        """Stop the thread, close the source; a pending frame is counted as dropped."""
        self._stop.set()
        self._thread.join(timeout=5.0)
        with self._cond:
            if self._slot is not None:
                self.stats.drop(self._slot.index, "pending at close")
                self._slot = None
        self.source.close()

    def __enter__(self) -> "LatestFrameGrabber":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_source(spec: str, fps: float = 30.0) -> FrameSource:
    """A source from a command-line spec: ``camera:N``, ``mcap:LOG#TOPIC``, a folder of images or a video file."""
    if spec.startswith("camera:"):
        try:
            return CameraSource(int(spec.split(":", 1)[1]))
        except ValueError as exc:
            raise ValueError(f"source: camera index must be an integer, got {spec!r}") from exc
    if spec.startswith("mcap:"):
        body = spec[len("mcap:"):]
        if "#" not in body:
            raise ValueError(f"source: use mcap:LOG#TOPIC, got {spec!r}")
        log, topic = body.split("#", 1)
        return McapImageSource(log, topic)
    p = Path(spec)
    if p.is_dir():
        return ImageFolderSource(p, fps=fps)
    if p.is_file():
        return VideoFileSource(p)
    raise FileNotFoundError(f"source: {spec!r} is not a file, folder, camera:N or mcap:LOG#TOPIC")
