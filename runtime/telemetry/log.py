"""Crash-safe telemetry: a rosbag2 (MCAP storage) directory written off the control loops.

Layout of a log (what ``ros2 bag info``/``rosbags.highlevel.AnyReader`` open)::

    <out_dir>/
        <out_dir.name>_0.mcap   MCAP, profile "ros2", schemas "ros2msg", messages "cdr"
        metadata.yaml           rosbag2 metadata, format version 9 (Jazzy), written by close()

Producers (control loops) call :meth:`TelemetryLog.write` with a cheap record
(tuple/dict/...); it only appends to a bounded deque and never blocks, locks or
raises.  A writer thread converts records to typestore messages, serialises
them to CDR and writes MCAP chunks.  It finishes the current chunk and flushes
the file at least every ``chunk_period_s``, so after SIGKILL (or a crash of the
interpreter) everything but the last ``chunk_period_s`` (plus one poll of at most
20 ms) can be recovered with :func:`runtime.telemetry.read.recover`.

Encryption at rest (``encryption_key=``, or ``EXO_ENCRYPT_AT_REST=1`` with the key in the
environment): when the log is closed, the finished MCAP file is
encrypted with AES-256-GCM (:mod:`runtime.security.aead`) into ``<name>_0.mcap.enc`` and the
plaintext file is removed; :mod:`runtime.telemetry.read` decrypts it for reading with the key
(argument, ``$EXO_DATA_KEY`` or ``$EXO_DATA_KEY_FILE``). While the run lasts, and after a crash
before ``close()``, the chunks on disk are plaintext (that is what makes them recoverable):
put the log folder on an encrypted file system where that matters.

Images: a topic of type ``sensor_msgs/msg/Image`` accepts only
:class:`runtime.core.privacy.AnonymizedFrame` records (anything else raises
:class:`runtime.core.privacy.PrivacyViolation` in :meth:`TelemetryLog.write`); the conversion to the
message is built in, so no raw frame can reach the file.

Times: ``*_ns`` are integer nanoseconds (log times are whatever clock the
caller uses, normally ``time.time_ns()`` so that ROS tools show wall time),
``*_s`` float seconds.
"""

from __future__ import annotations

import collections
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO, Any, NamedTuple

import yaml
from mcap.writer import CompressionType, Writer

from runtime.telemetry import schema as telemetry_schema
from runtime.core.privacy import AnonymizedFrame, require_anonymized

ROSBAG2_VERSION = 9
ROS_DISTRO = "jazzy"
STORAGE_IDENTIFIER = "mcap"
SCHEMA_ENCODING = "ros2msg"
MESSAGE_ENCODING = "cdr"
MCAP_PROFILE = "ros2"
WRITER_LIBRARY = "exo_runtime.telemetry"

#: Upper bound accepted for ``chunk_period_s`` (s): the crash-loss window.
MAX_CHUNK_PERIOD_S = 0.5
#: Longest time the writer thread sleeps between looks at the queue (s).
MAX_POLL_S = 0.02
#: Backlog (records) above which the writer thread drains again without sleeping.
_BACKLOG = 1024
#: The writer thread releases the GIL after holding it this long (s) so control loops are not
#: delayed by more than about this (CPython otherwise lets it run for the 5 ms switch interval).
GIL_SLICE_S = 2e-4

#: QoS offered by every telemetry topic (rosbag2 v9 spelling): what a default
#: reliable, volatile, keep-last publisher offers; ``ros2 bag play`` republishes with it.
DEFAULT_QOS_PROFILES: list[dict[str, Any]] = [
    {
        "history": "keep_last",
        "depth": 100,
        "reliability": "reliable",
        "durability": "volatile",
        "deadline": {"sec": 0, "nsec": 0},
        "lifespan": {"sec": 0, "nsec": 0},
        "liveliness": "automatic",
        "liveliness_lease_duration": {"sec": 0, "nsec": 0},
        "avoid_ros_namespace_conventions": False,
    }
]
DEFAULT_QOS_YAML = yaml.safe_dump(DEFAULT_QOS_PROFILES, default_flow_style=False, sort_keys=False).strip()

#: Environment switch: "1" encrypts every telemetry log at rest (key from $EXO_DATA_KEY[_FILE]).
ENV_ENCRYPT = "EXO_ENCRYPT_AT_REST"
#: Message types that carry pictures: only anonymised frames may be written to them.
IMAGE_MSGTYPES = frozenset({"sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage"})
#: ``frame_id`` of logged camera images.
CAMERA_FRAME_ID = "camera"

_COMPRESSION = {"zstd": CompressionType.ZSTD, "lz4": CompressionType.LZ4, "none": CompressionType.NONE}


class TelemetryError(RuntimeError):
    """The telemetry writer thread failed (e.g. disk full); the log may be incomplete."""


class TopicCount(NamedTuple):
    """One topic of a rosbag2 log, as listed in ``metadata.yaml``."""

    topic: str
    msgtype: str
    message_count: int
    #: ``RIHS01_...``; empty: computed from the project's typestore when the type is known.
    type_description_hash: str = ""
    #: YAML text of the offered QoS list as stored in the MCAP channel; empty: the default.
    offered_qos_profiles: str = ""


def bag_mcap_path(out_dir: Path) -> Path:
    """Path of the (single) storage file of the rosbag2 directory *out_dir*."""
    out_dir = Path(out_dir)
    return out_dir / f"{out_dir.name}_0.mcap"


def encrypted_mcap_path(mcap_path: Path) -> Path:
    """Where the encrypted form of *mcap_path* lives (``<name>.mcap.enc``)."""
    return Path(mcap_path).with_name(Path(mcap_path).name + ".enc")


def rosbag2_metadata(
    mcap_path: Path,
    topics_with_counts: Iterable[TopicCount | tuple],
    start_ns: int,
    end_ns: int,
    *,
    custom_data: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The ``rosbag2_bagfile_information`` mapping (format version 9) for one MCAP file.

    *start_ns*/*end_ns* are the first and last message log times (ns); ignored when
    there are no messages.
    """
    topics = [TopicCount(*t) for t in topics_with_counts]
    total = sum(int(t.message_count) for t in topics)
    start = int(start_ns) if total else 0
    duration = max(0, int(end_ns) - int(start_ns)) if total else 0
    entries = []
    for t in topics:
        digest = t.type_description_hash
        if not digest and t.msgtype in telemetry_schema.typestore().fielddefs:
            digest = telemetry_schema.type_hash(t.msgtype)
        qos = yaml.safe_load(t.offered_qos_profiles) if t.offered_qos_profiles else DEFAULT_QOS_PROFILES
        entries.append(
            {
                "topic_metadata": {
                    "name": t.topic,
                    "type": t.msgtype,
                    "serialization_format": MESSAGE_ENCODING,
                    "offered_qos_profiles": qos or [],
                    "type_description_hash": digest,
                },
                "message_count": int(t.message_count),
            }
        )
    name = Path(mcap_path).name
    return {
        "version": ROSBAG2_VERSION,
        "storage_identifier": STORAGE_IDENTIFIER,
        "duration": {"nanoseconds": duration},
        "starting_time": {"nanoseconds_since_epoch": start},
        "message_count": total,
        "topics_with_message_count": entries,
        "compression_format": "",
        "compression_mode": "",
        "relative_file_paths": [name],
        "files": [
            {
                "path": name,
                "starting_time": {"nanoseconds_since_epoch": start},
                "duration": {"nanoseconds": duration},
                "message_count": total,
            }
        ],
        "custom_data": {str(k): str(v) for k, v in (custom_data or {}).items()},
        "ros_distro": ROS_DISTRO,
    }


def _dump_yaml(data: Any) -> str:
    return yaml.safe_dump(data, default_flow_style=False, sort_keys=False)


def add_rosbag2_mcap_metadata(writer: Writer, info: Mapping[str, Any]) -> None:
    """Add the ``rosbag2`` metadata record (as rosbag2's MCAP plugin does) before ``finish()``."""
    writer.add_metadata(
        "rosbag2", {"serialized_metadata": _dump_yaml(dict(info)).strip(), "ROS_DISTRO": ROS_DISTRO}
    )


def write_metadata_yaml(
    out_dir: Path,
    mcap_path: Path,
    topics_with_counts: Iterable[TopicCount | tuple],
    start_ns: int,
    end_ns: int,
    *,
    custom_data: Mapping[str, str] | None = None,
) -> Path:
    """Write ``<out_dir>/metadata.yaml`` (rosbag2 format 9, storage ``mcap``) atomically.

    *topics_with_counts* holds :class:`TopicCount` or tuples
    ``(topic, msgtype, message_count[, type_description_hash[, offered_qos_yaml]])``;
    *start_ns*/*end_ns* are the first/last message log times (ns).  Returns the path.
    """
    out_dir = Path(out_dir)
    info = rosbag2_metadata(mcap_path, topics_with_counts, start_ns, end_ns, custom_data=custom_data)
    path = out_dir / "metadata.yaml"
    tmp = out_dir / "metadata.yaml.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(_dump_yaml({"rosbag2_bagfile_information": info}))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def anonymized_image_message(frame: AnonymizedFrame, offset_ns: int = 0) -> Any:
    """``sensor_msgs/msg/Image`` (``rgb8``, frame ``camera``) of an anonymised frame.

    The header stamp is the capture time plus *offset_ns* (monotonic -> wall clock).
    """
    frame = require_anonymized(frame, "sensor_msgs/Image conversion")
    img = frame.image
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype.name != "uint8":
        raise ValueError(f"AnonymizedFrame.image: shape {img.shape} dtype {img.dtype}: expected (H, W, 3) uint8 RGB")
    h, w = int(img.shape[0]), int(img.shape[1])
    return telemetry_schema.make(
        "sensor_msgs/msg/Image",
        header=telemetry_schema.make("std_msgs/msg/Header", stamp=int(frame.t_capture_ns) + int(offset_ns),
                                     frame_id=CAMERA_FRAME_ID),
        height=h, width=w, encoding="rgb8", is_bigendian=0, step=3 * w, data=img.reshape(-1))


class _Topic:
    __slots__ = ("topic", "msgtype", "to_message", "channel_id", "count", "type_hash", "image")

    def __init__(self, topic: str, msgtype: str, to_message: Callable[[Any], object] | None) -> None:
        self.topic = topic
        self.msgtype = msgtype
        self.to_message = to_message
        self.channel_id: int | None = None
        self.count = 0
        self.type_hash = telemetry_schema.type_hash(msgtype)
        self.image = msgtype in IMAGE_MSGTYPES


class TelemetryLog:
    """Bounded, non-blocking telemetry recorder writing a crash-safe rosbag2/MCAP directory.

    Use::

        log = TelemetryLog(Path("runs/x/telemetry"))
        log.register("/exo/torque_command", "exo_runtime/msg/TorqueCommand", to_msg)
        with log.open():
            ...
            log.write("/exo/torque_command", time.time_ns(), (names, req, cmd, age, gain, st, stale))

    Counters (read any time): ``written`` messages in the file, ``dropped`` records
    rejected because the queue was full or the log was closing/closed,
    ``unregistered_drops`` writes to unregistered topics, ``conversion_errors``
    records whose ``to_message``/serialisation failed.
    """

    def __init__(
        self,
        out_dir: Path,
        *,
        chunk_period_s: float = 0.25,
        chunk_size_bytes: int = 64 * 1024,
        queue_capacity: int = 100_000,
        compression: str = "zstd",
        fsync: bool = False,
        encryption_key: Any = None,
    ) -> None:
        """*chunk_period_s* (s, 0 < x <= 0.5) bounds the data lost by a crash; chunks are also
        finished once they exceed *chunk_size_bytes* (uncompressed bytes).  *queue_capacity*
        bounds the records waiting for the writer thread.  *compression* of chunks: "zstd",
        "lz4" or "none".  *fsync*: also ``os.fsync`` at every periodic flush (protects against
        power loss, not only process death; costs disk latency in the writer thread).
        *encryption_key*: a :class:`runtime.security.DataKey`; the file is encrypted on close.
        With ``EXO_ENCRYPT_AT_REST=1`` in the environment and no key given, the key is loaded from
        ``$EXO_DATA_KEY`` / ``$EXO_DATA_KEY_FILE`` (no key there: :class:`runtime.security.KeyMissingError`).
        """
        if not 0.0 < chunk_period_s <= MAX_CHUNK_PERIOD_S:
            raise ValueError(f"chunk_period_s must be in (0, {MAX_CHUNK_PERIOD_S}] s, got {chunk_period_s}")
        if chunk_size_bytes < 1:
            raise ValueError(f"chunk_size_bytes must be positive, got {chunk_size_bytes}")
        if queue_capacity < 1:
            raise ValueError(f"queue_capacity must be positive, got {queue_capacity}")
        if compression not in _COMPRESSION:
            raise ValueError(f"compression must be one of {sorted(_COMPRESSION)}, got {compression!r}")
        self.out_dir = Path(out_dir)
        self.mcap_path = bag_mcap_path(self.out_dir)
        self.chunk_period_s = float(chunk_period_s)
        self.chunk_size_bytes = int(chunk_size_bytes)
        self.queue_capacity = int(queue_capacity)
        self.compression = compression
        self.fsync = fsync
        if encryption_key is None and os.environ.get(ENV_ENCRYPT) == "1":
            from runtime.security.keys import load_key

            encryption_key = load_key()   # KeyMissingError now, not after the run, when no key is set
        if encryption_key is not None:
            from runtime.security.keys import DataKey

            if not isinstance(encryption_key, DataKey):
                raise ValueError(f"encryption_key: expected a runtime.security.DataKey, got {type(encryption_key).__name__}")
        self.encryption_key = encryption_key
        #: Path of the encrypted file once close() has encrypted it.
        self.encrypted_path: Path | None = None

        self.written = 0
        self.dropped = 0
        self.unregistered_drops = 0
        self.conversion_errors = 0
        #: Exception that stopped the writer thread, if any.
        self.error: BaseException | None = None
        #: First/last written log time (ns); None before the first message.
        self.start_ns: int | None = None
        self.end_ns: int | None = None

        self._queue: collections.deque[tuple[str, int, Any]] = collections.deque()
        self._topics: dict[str, _Topic] = {}
        self._new_topics: collections.deque[_Topic] = collections.deque()
        self._schema_ids: dict[str, int] = {}
        self._warned: set[tuple[str, str]] = set()
        self._register_lock = threading.Lock()
        self._stop = threading.Event()
        self._closing = False
        self._error_raised = False
        self._file: IO[bytes] | None = None
        self._writer: Writer | None = None
        self._thread: threading.Thread | None = None

    # -- set-up ---------------------------------------------------------------------------

    def register(self, topic: str, msgtype: str, to_message: Callable[[Any], object] | None = None) -> None:
        """Declare *topic* carrying *msgtype* (e.g. ``"sensor_msgs/msg/JointState"``).

        *to_message* converts a producer record into a typestore message object
        (see :func:`runtime.telemetry.schema.make`); it runs in the writer thread.
        Without it, records must already be message objects.  May be called before
        or after :meth:`open`; registering the same topic again with the same type
        replaces the converter, with another type raises ``ValueError``.

        Image types (``sensor_msgs/msg/Image``, ``CompressedImage``) take no converter:
        their records must be :class:`runtime.core.privacy.AnonymizedFrame` (built-in conversion).
        """
        if msgtype in IMAGE_MSGTYPES:
            if to_message is not None:
                raise ValueError(f"topic {topic!r} ({msgtype}): image topics take AnonymizedFrame records and "
                                 "no converter (the conversion is built in so no raw frame can reach the log)")
            if msgtype != "sensor_msgs/msg/Image":
                raise ValueError(f"topic {topic!r}: {msgtype} is not supported for images; use sensor_msgs/msg/Image")
            to_message = anonymized_image_message
        try:
            telemetry_schema.msg_class(msgtype)
        except KeyError as exc:
            raise ValueError(f"cannot register topic {topic!r}: {exc.args[0]}") from None
        with self._register_lock:
            have = self._topics.get(topic)
            if have is not None:
                if have.msgtype != msgtype:
                    raise ValueError(f"topic {topic!r} is already registered with type {have.msgtype!r}, not {msgtype!r}")
                have.to_message = to_message
                return
            entry = _Topic(topic, msgtype, to_message)
            self._new_topics.append(entry)
            self._topics[topic] = entry

    def open(self) -> TelemetryLog:
        """Create ``out_dir``, start the MCAP file and the writer thread; returns self."""
        if self._thread is not None or self._closing:
            raise RuntimeError(f"TelemetryLog({self.out_dir}) was already opened")
        if not callable(getattr(Writer, "flush", None)):
            raise RuntimeError("mcap.writer.Writer has no public flush(); TelemetryLog needs mcap >= 1.6")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if self.mcap_path.exists():
            raise FileExistsError(f"telemetry log already exists: {self.mcap_path}")
        self._file = open(self.mcap_path, "wb")  # noqa: SIM115 - closed by the writer thread
        try:
            self._writer = Writer(
                self._file,
                chunk_size=self.chunk_size_bytes,
                compression=_COMPRESSION[self.compression],
            )
            self._writer.start(profile=MCAP_PROFILE, library=WRITER_LIBRARY)
            self._file.flush()
        except BaseException:
            self._file.close()
            raise
        self._thread = threading.Thread(target=self._run, name=f"telemetry-writer:{self.out_dir.name}", daemon=True)
        self._thread.start()
        return self

    def __enter__(self) -> TelemetryLog:
        if self._closing:
            raise RuntimeError(f"TelemetryLog({self.out_dir}) is closed")
        return self if self._thread is not None else self.open()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- producer side (control loops) ----------------------------------------------------

    def write(self, topic: str, log_time_ns: int, record: Any) -> bool:
        """Queue *record* for *topic* at *log_time_ns* (ns; also the publish time).

        Never blocks: returns False (and counts ``dropped``) when the
        queue is full or the log is closing, or when *topic* is unregistered (counted in
        ``unregistered_drops``, warned once per topic). Raises only
        :class:`runtime.core.privacy.PrivacyViolation`, for a record on an image topic that is not an
        :class:`runtime.core.privacy.AnonymizedFrame` (a programming error that must not pass silently).
        """
        entry = self._topics.get(topic)
        if entry is not None and entry.image and not isinstance(record, AnonymizedFrame):
            require_anonymized(record, f"MCAP log image topic {topic!r}")
        if self._closing:
            self.dropped += 1
            return False
        if entry is None:
            self.unregistered_drops += 1
            self._warn_once("unregistered", topic, f"TelemetryLog: write() to unregistered topic {topic!r} dropped; call register() first")
            return False
        queue = self._queue
        if len(queue) >= self.queue_capacity:
            self.dropped += 1
            return False
        queue.append((topic, log_time_ns, record))
        return True

    @property
    def queued(self) -> int:
        """Records waiting for the writer thread."""
        return len(self._queue)

    def stats(self) -> dict[str, int]:
        """Counters as a dict (written, dropped, unregistered_drops, conversion_errors, queued)."""
        return {
            "written": self.written,
            "dropped": self.dropped,
            "unregistered_drops": self.unregistered_drops,
            "conversion_errors": self.conversion_errors,
            "queued": len(self._queue),
        }

    # -- shutdown -------------------------------------------------------------------------

    def close(self) -> None:
        """Drain the queue, finish the MCAP file (summary/footer) and write ``metadata.yaml``.

        Idempotent, and safe to call from a signal handler even while another ``close()``
        of the same thread is in progress (it only sets a flag and joins the writer
        thread, which does all file I/O).  Raises :class:`TelemetryError` once if the
        writer thread failed.
        """
        self._closing = True
        self._stop.set()
        thread = self._thread
        if thread is None:  # never opened: nothing was written, queued records are lost
            self.dropped += len(self._queue)
            self._queue.clear()
        elif thread is not threading.current_thread():
            thread.join()
        if self.error is not None and not self._error_raised:
            self._error_raised = True
            raise TelemetryError(f"telemetry writer for {self.out_dir} failed: {self.error!r}") from self.error

    # -- writer thread --------------------------------------------------------------------

    def _warn_once(self, what: str, topic: str, text: str) -> None:
        key = (what, topic)
        if key not in self._warned:
            self._warned.add(key)
            try:
                warnings.warn(text, RuntimeWarning, stacklevel=3)
            except Exception:  # noqa: BLE001 - a "-W error" filter must not make write() raise
                pass

    def _add_channels(self, writer: Writer) -> None:
        while self._new_topics:
            entry = self._new_topics.popleft()
            schema_id = self._schema_ids.get(entry.msgtype)
            if schema_id is None:
                schema_id = writer.register_schema(
                    name=entry.msgtype,
                    encoding=SCHEMA_ENCODING,
                    data=telemetry_schema.message_definition(entry.msgtype).encode(),
                )
                self._schema_ids[entry.msgtype] = schema_id
            entry.channel_id = writer.register_channel(
                topic=entry.topic,
                message_encoding=MESSAGE_ENCODING,
                schema_id=schema_id,
                metadata={"offered_qos_profiles": DEFAULT_QOS_YAML, "topic_type_hash": entry.type_hash},
            )

    def _drain(self, writer: Writer) -> int:
        """Write every record queued now; returns the number written."""
        queue = self._queue
        serialize = telemetry_schema.typestore().serialize_cdr
        topics = self._topics
        clock = time.perf_counter
        slice_end = clock() + GIL_SLICE_S
        n = 0
        for _ in range(len(queue)):
            topic, log_time_ns, record = queue.popleft()
            entry = topics[topic]
            if entry.channel_id is None:
                self._add_channels(writer)
            try:
                msg = entry.to_message(record) if entry.to_message is not None else record
                if getattr(msg, "__msgtype__", None) != entry.msgtype:
                    raise TypeError(f"expected a {entry.msgtype} message, got {type(msg).__name__}")
                data = bytes(serialize(msg, entry.msgtype))
            except Exception as exc:  # a bad record must not stop the log
                self.conversion_errors += 1
                self._warn_once("convert", topic, f"TelemetryLog: record for {topic!r} dropped: {exc!r}")
                continue
            t_ns = int(log_time_ns)
            writer.add_message(
                channel_id=entry.channel_id,  # type: ignore[arg-type]
                log_time=t_ns,
                data=data,
                publish_time=t_ns,
                sequence=entry.count & 0xFFFFFFFF,
            )
            entry.count += 1
            self.written += 1
            if self.start_ns is None or t_ns < self.start_ns:
                self.start_ns = t_ns
            if self.end_ns is None or t_ns > self.end_ns:
                self.end_ns = t_ns
            n += 1
            if clock() >= slice_end:
                time.sleep(0)  # hand the GIL to waiting control loops
                slice_end = clock() + GIL_SLICE_S
        return n

    def _flush(self, writer: Writer, f: IO[bytes]) -> None:
        writer.flush()  # finishes the chunk and flushes the Python file object
        if self.fsync:
            os.fsync(f.fileno())

    def _run(self) -> None:
        writer, f = self._writer, self._file
        assert writer is not None and f is not None
        poll_s = min(MAX_POLL_S, self.chunk_period_s / 5.0)
        unflushed_since: float | None = None  # monotonic s of the first drain since the last flush
        try:
            while True:
                # Sleeping between drains batches records (fewer GIL hand-overs); only a large
                # backlog is drained back to back.
                stopping = self._stop.wait(0.0 if len(self._queue) >= _BACKLOG else poll_s)
                self._add_channels(writer)
                if self._drain(writer) and unflushed_since is None:
                    unflushed_since = time.monotonic()
                # A record may have waited up to one poll before being drained: flush early by that.
                if unflushed_since is not None and time.monotonic() - unflushed_since >= self.chunk_period_s - poll_s:
                    self._flush(writer, f)
                    unflushed_since = None
                if stopping and not self._queue:
                    break
            self._finish(writer, f)
        except BaseException as exc:  # recorded, re-raised by close()
            self.error = exc
            try:
                f.close()
            except OSError:
                pass

    def _topic_counts(self) -> list[TopicCount]:
        return [TopicCount(t.topic, t.msgtype, t.count, t.type_hash, DEFAULT_QOS_YAML) for t in list(self._topics.values())]

    def _finish(self, writer: Writer, f: IO[bytes]) -> None:
        self._add_channels(writer)
        custom = {
            "writer": WRITER_LIBRARY,
            "dropped": str(self.dropped),
            "unregistered_drops": str(self.unregistered_drops),
            "conversion_errors": str(self.conversion_errors),
        }
        start = self.start_ns or 0
        end = self.end_ns or 0
        topics = self._topic_counts()
        add_rosbag2_mcap_metadata(writer, rosbag2_metadata(self.mcap_path, topics, start, end, custom_data=custom))
        writer.finish()
        f.flush()
        os.fsync(f.fileno())
        f.close()
        if self.encryption_key is not None:
            custom["encryption"] = "AES-256-GCM (runtime.security.aead), key id " + self.encryption_key.key_id.hex()
        write_metadata_yaml(self.out_dir, self.mcap_path, topics, start, end, custom_data=custom)
        if self.encryption_key is not None:
            from runtime.security.aead import encrypt_file

            self.encrypted_path = encrypt_file(self.mcap_path, encrypted_mcap_path(self.mcap_path),
                                               self.encryption_key, remove_plaintext=True)


__all__ = [
    "DEFAULT_QOS_PROFILES",
    "DEFAULT_QOS_YAML",
    "IMAGE_MSGTYPES",
    "anonymized_image_message",
    "encrypted_mcap_path",
    "TelemetryError",
    "TelemetryLog",
    "TopicCount",
    "add_rosbag2_mcap_metadata",
    "bag_mcap_path",
    "rosbag2_metadata",
    "write_metadata_yaml",
]
