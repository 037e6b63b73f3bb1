"""Read and recover telemetry logs written by :class:`runtime.telemetry.log.TelemetryLog`.

A log is a rosbag2 directory with one MCAP file, or that MCAP file itself.  A
log whose writer was killed (SIGKILL, power cut, OOM) has no summary/footer and
usually ends in the middle of a record: :func:`iter_messages` then reads it
sequentially and stops cleanly at the first incomplete record, and
:func:`recover` rewrites it into a complete rosbag2 directory.

Messages are decoded with the project's typestore
(:mod:`runtime.telemetry.schema`), not with the definitions embedded in the file.

Encrypted logs (``<name>_0.mcap.enc``, written when the log had an encryption key) are
authenticated and decrypted in memory with the key given as ``key=`` or found in
``$EXO_DATA_KEY`` / ``$EXO_DATA_KEY_FILE``; no key is :class:`runtime.security.KeyMissingError`,
another key :class:`runtime.security.WrongKeyError`, a modified file
:class:`runtime.security.TamperedError` (all ``ValueError``: ``exo report`` prints them and exits 2).
Times: ``*_ns`` integer nanoseconds.
"""

from __future__ import annotations

import contextlib
import io
import os
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml
from mcap.exceptions import McapError
from mcap.reader import make_reader
from mcap.records import Channel, Footer, Message, Schema
from mcap.stream_reader import StreamReader
from mcap.writer import CompressionType, Writer

from runtime.telemetry import schema as telemetry_schema
from runtime.telemetry.log import (
    MCAP_PROFILE,
    MESSAGE_ENCODING,
    WRITER_LIBRARY,
    TopicCount,
    add_rosbag2_mcap_metadata,
    bag_mcap_path,
    encrypted_mcap_path,
    rosbag2_metadata,
    write_metadata_yaml,
)

MCAP_MAGIC = b"\x89MCAP0\r\n"
_FOOTER_LEN = 1 + 8 + 20  # opcode, record length, summary_start/summary_offset_start/crc

# What reading an MCAP file that ends inside a record can raise: short reads
# (EndOfFile, struct.error), a cut chunk (decompression or CRC errors), a cut
# string (UnicodeDecodeError is a ValueError).
_truncation_errors: list[type[BaseException]] = [McapError, struct.error, ValueError, EOFError]
try:
    import zstandard

    _truncation_errors.append(zstandard.ZstdError)
except ImportError:  # pragma: no cover - mcap then cannot read zstd chunks at all
    pass
TRUNCATION_ERRORS: tuple[type[BaseException], ...] = tuple(_truncation_errors)


@dataclass(frozen=True)
class RecoverResult:
    """Outcome of :func:`recover`."""

    #: Messages in the recovered log.
    messages: int
    #: Messages per topic.
    topics: dict[str, int]
    #: True if the input had no footer (writer died) and was rewritten.
    truncated: bool
    #: The complete rosbag2 directory (open it with ``AnyReader([out_path])``).
    out_path: Path
    #: Its MCAP file.
    mcap_path: Path
    #: Where the original truncated file was kept (in-place recovery only).
    original_path: Path | None = None


def resolve_log(log_dir_or_mcap: Path | str) -> tuple[Path, Path]:
    """``(bag_dir, mcap_path)`` of a rosbag2 directory or an MCAP file path."""
    path = Path(log_dir_or_mcap)
    if path.is_file():
        return path.parent, path
    if not path.is_dir():
        raise FileNotFoundError(f"no telemetry log at {path}")
    default = bag_mcap_path(path)
    if default.is_file():
        return path, default
    if encrypted_mcap_path(default).is_file():
        return path, encrypted_mcap_path(default)
    meta = path / "metadata.yaml"
    if meta.is_file():
        info = yaml.safe_load(meta.read_text(encoding="utf-8")).get("rosbag2_bagfile_information", {})
        files = [path / Path(p).name for p in info.get("relative_file_paths", [])]
        if len(files) == 1 and files[0].is_file():
            return path, files[0]
    candidates = sorted(path.glob("*.mcap")) or sorted(path.glob("*.mcap.enc"))
    if len(candidates) != 1:
        raise FileNotFoundError(f"expected one .mcap file in {path}, found {[c.name for c in candidates]}")
    return path, candidates[0]


_cache_lock = threading.Lock()
_cache: dict[str, Any] = {}


def _is_encrypted(path: Path) -> bool:
    from runtime.security.aead import MAGIC

    with open(path, "rb") as f:
        return f.read(len(MAGIC)) == MAGIC


def _plaintext(path: Path, key: Any = None) -> bytes:
    """Authenticated plaintext of an encrypted log (the last one is cached while the file is unchanged)."""
    from runtime.security.aead import decrypt_path_to_bytes
    from runtime.security.keys import KeyMissingError, key_from_env_or_none

    if key is None:
        key = key_from_env_or_none()
    if key is None:
        raise KeyMissingError(f"{path} is encrypted (AES-256-GCM): set $EXO_DATA_KEY_FILE (or $EXO_DATA_KEY) "
                              "to the key it was written with; without that key it cannot be read")
    st = path.stat()
    tag = (str(path.resolve()), st.st_mtime_ns, st.st_size, key.key_id)
    with _cache_lock:
        if _cache.get("tag") == tag:
            return _cache["data"]
    data = decrypt_path_to_bytes(path, key)
    with _cache_lock:
        _cache.update(tag=tag, data=data)
    return data


@contextlib.contextmanager
def open_log_file(mcap_path: Path | str, key: Any = None) -> Iterator[IO[bytes]]:
    """A readable binary stream of the MCAP bytes of *mcap_path*, decrypting ``.mcap.enc`` files."""
    path = Path(mcap_path)
    if _is_encrypted(path):
        yield io.BytesIO(_plaintext(path, key))
    else:
        with open(path, "rb") as f:
            yield f


def is_encrypted_log(log_dir_or_mcap: Path | str) -> bool:
    """True if the log's storage file is encrypted."""
    return _is_encrypted(resolve_log(log_dir_or_mcap)[1])


def is_complete(mcap_path: Path | str, key: Any = None) -> bool:
    """True if *mcap_path* ends with a valid footer and readable summary (writer finished)."""
    path = Path(mcap_path)
    if path.is_dir():
        path = resolve_log(path)[1]
    with open_log_file(path, key) as f:
        head = f.read(len(MCAP_MAGIC))
        size = f.seek(0, os.SEEK_END)
        if head != MCAP_MAGIC or size < 2 * len(MCAP_MAGIC) + _FOOTER_LEN:
            return False
        f.seek(size - len(MCAP_MAGIC) - _FOOTER_LEN)
        tail = f.read()
        if tail[-len(MCAP_MAGIC):] != MCAP_MAGIC or tail[0] != 0x02:
            return False
        (length,) = struct.unpack_from("<Q", tail, 1)
        if length != 20:
            return False
        f.seek(0)
        try:
            make_reader(f).get_summary()
        except TRUNCATION_ERRORS:
            return False
    return True


@dataclass
class _Scan:
    """State of a sequential scan: what was seen so far."""

    schemas: dict[int, Schema] = field(default_factory=dict)
    channels: dict[int, Channel] = field(default_factory=dict)
    truncated: bool = False
    footer: bool = False
    orphan_messages: int = 0


def _scan_records(path: Path, scan: _Scan, key: Any = None) -> Iterator[tuple[Schema | None, Channel, Message]]:
    """Messages of *path* in file order; stops quietly at the first incomplete record."""
    with open_log_file(path, key) as f:
        head = f.read(len(MCAP_MAGIC))
        if head != MCAP_MAGIC:
            if MCAP_MAGIC.startswith(head):  # empty, or killed while writing the magic
                scan.truncated = True
                return
            raise ValueError(f"{path} is not an MCAP file (magic {head!r})")
        f.seek(0)
        records = StreamReader(f, validate_crcs=True).records
        while True:
            try:
                record = next(records)
            except StopIteration:
                break
            except TRUNCATION_ERRORS:
                scan.truncated = True
                break
            if isinstance(record, Message):
                channel = scan.channels.get(record.channel_id)
                if channel is None:
                    scan.orphan_messages += 1
                    continue
                yield scan.schemas.get(channel.schema_id), channel, record
            elif isinstance(record, Schema):
                scan.schemas[record.id] = record
            elif isinstance(record, Channel):
                scan.channels[record.id] = record
            elif isinstance(record, Footer):
                scan.footer = True
        if not scan.footer:
            scan.truncated = True


def _decode(schema: Schema | None, channel: Channel, message: Message) -> tuple[str, str, int, Any]:
    if schema is None:
        raise ValueError(f"topic {channel.topic!r} has no schema; cannot decode")
    if channel.message_encoding != MESSAGE_ENCODING:
        raise ValueError(f"topic {channel.topic!r}: message encoding {channel.message_encoding!r} is not cdr")
    try:
        msg = telemetry_schema.deserialize(message.data, schema.name)
    except KeyError as exc:
        raise ValueError(f"topic {channel.topic!r}: {exc.args[0]}") from None
    return channel.topic, schema.name, message.log_time, msg


def iter_messages(log_dir_or_mcap: Path | str, key: Any = None) -> Iterator[tuple[str, str, int, Any]]:
    """Yield ``(topic, msgtype, log_time_ns, msg)`` of a telemetry log.

    Complete files are read through their summary in log-time order; truncated
    files sequentially in file order up to the last complete chunk (no exception).
    Encrypted logs need *key* (a :class:`runtime.security.DataKey`) or the key in the environment.
    """
    _bag_dir, path = resolve_log(log_dir_or_mcap)
    if is_complete(path, key):
        with open_log_file(path, key) as f:
            for schema, channel, message in make_reader(f).iter_messages(log_time_order=True):
                yield _decode(schema, channel, message)
    else:
        for schema, channel, message in _scan_records(path, _Scan(), key):
            yield _decode(schema, channel, message)


def _rewrite(src: Path, tmp: Path, final_name: str) -> tuple[_Scan, list[TopicCount], int, int]:
    """Copy every readable record of *src* into a complete MCAP *tmp* (raw bytes, no re-encoding).

    *final_name* is the file name *tmp* will get (recorded in the embedded rosbag2 metadata).
    """
    scan = _Scan()
    schema_ids: dict[int, int] = {}
    channel_ids: dict[int, int] = {}
    counts: dict[int, int] = {}
    start_ns: int | None = None
    end_ns = 0
    with open(tmp, "wb") as f:
        writer = Writer(f, compression=CompressionType.ZSTD)
        writer.start(profile=MCAP_PROFILE, library=f"{WRITER_LIBRARY} (recovered)")

        def channel_id(schema: Schema | None, channel: Channel) -> int:
            if channel.id not in channel_ids:
                sid = 0
                if schema is not None:
                    if schema.id not in schema_ids:
                        schema_ids[schema.id] = writer.register_schema(schema.name, schema.encoding, schema.data)
                    sid = schema_ids[schema.id]
                channel_ids[channel.id] = writer.register_channel(
                    channel.topic, channel.message_encoding, sid, dict(channel.metadata)
                )
                counts[channel.id] = 0
            return channel_ids[channel.id]

        for schema, channel, message in _scan_records(src, scan):
            writer.add_message(
                channel_id(schema, channel), message.log_time, message.data, message.publish_time, message.sequence
            )
            counts[channel.id] += 1
            start_ns = message.log_time if start_ns is None else min(start_ns, message.log_time)
            end_ns = max(end_ns, message.log_time)
        for channel in scan.channels.values():  # topics that had no complete message yet
            channel_id(scan.schemas.get(channel.schema_id), channel)

        topics = _topic_counts(scan, counts)
        add_rosbag2_mcap_metadata(
            writer, rosbag2_metadata(Path(final_name), topics, start_ns or 0, end_ns, custom_data={"recovered_from": src.name})
        )
        writer.finish()
        f.flush()
        os.fsync(f.fileno())
    return scan, topics, start_ns or 0, end_ns


def _topic_counts(scan: _Scan, counts: dict[int, int]) -> list[TopicCount]:
    topics = []
    for cid, channel in scan.channels.items():
        schema = scan.schemas.get(channel.schema_id)
        msgtype = schema.name if schema is not None else ""
        digest = ""
        if schema is not None and schema.encoding == "ros2msg":
            try:
                digest = telemetry_schema.type_hash_from_definition(msgtype, schema.data.decode())
            except Exception:  # noqa: BLE001 - an unparsable definition only loses the hash
                digest = ""
        topics.append(
            TopicCount(channel.topic, msgtype, counts.get(cid, 0), digest, channel.metadata.get("offered_qos_profiles", ""))
        )
    return topics


def recover(log_dir_or_mcap: Path | str, out_dir: Path | str | None = None) -> RecoverResult:
    """Turn a (possibly truncated) telemetry log into a complete rosbag2 directory.

    In place (``out_dir=None``): a truncated ``<name>_0.mcap`` is rewritten via a
    temporary file and ``os.replace``; the original is kept as
    ``<name>_0.mcap.truncated``; ``metadata.yaml`` is (re)written.  A complete file
    is left alone (``metadata.yaml`` is only written if missing).  With *out_dir*,
    a new rosbag2 directory ``<out_dir>/<out_dir.name>_0.mcap`` is written and the
    input is not touched.  Messages after the last complete chunk are lost.
    """
    bag_dir, src = resolve_log(log_dir_or_mcap)
    if _is_encrypted(src):
        if is_complete(src):   # authenticated: encryption happens after the writer finished
            per_topic: dict[str, int] = {}
            for topic, _t, _ns, _m in iter_messages(src):
                per_topic[topic] = per_topic.get(topic, 0) + 1
            return RecoverResult(messages=sum(per_topic.values()), topics=per_topic, truncated=False,
                                 out_path=bag_dir, mcap_path=src)
        raise ValueError(f"{src}: encrypted log is not a complete MCAP file; decrypt it first "
                         "(exo secure decrypt) and recover the plaintext")
    if out_dir is None and is_complete(src):
        scan = _Scan()
        counts: dict[int, int] = {}
        start_ns: int | None = None
        end_ns = 0
        for _schema, channel, message in _scan_records(src, scan):
            counts[channel.id] = counts.get(channel.id, 0) + 1
            start_ns = message.log_time if start_ns is None else min(start_ns, message.log_time)
            end_ns = max(end_ns, message.log_time)
        topics = _topic_counts(scan, counts)
        if not (bag_dir / "metadata.yaml").exists():
            write_metadata_yaml(bag_dir, src, topics, start_ns or 0, end_ns)
        return RecoverResult(
            messages=sum(counts.values()),
            topics={t.topic: t.message_count for t in topics},
            truncated=False,
            out_path=bag_dir,
            mcap_path=src,
        )

    if out_dir is None:
        dst_dir, dst = bag_dir, src
    else:
        dst_dir = Path(out_dir)
        dst_dir.mkdir(parents=True, exist_ok=True)
        dst = bag_mcap_path(dst_dir)
        if dst.exists():
            raise FileExistsError(f"refusing to overwrite {dst}")
    tmp = dst.with_name(dst.name + ".recover.tmp")
    try:
        scan, topics, start_ns, end_ns = _rewrite(src, tmp, dst.name)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    original: Path | None = None
    if out_dir is None:
        original = src.with_name(src.name + ".truncated")
        os.replace(src, original)
    os.replace(tmp, dst)
    write_metadata_yaml(dst_dir, dst, topics, start_ns, end_ns, custom_data={"recovered_from": src.name})
    return RecoverResult(
        messages=sum(t.message_count for t in topics),
        topics={t.topic: t.message_count for t in topics},
        truncated=scan.truncated,
        out_path=dst_dir,
        mcap_path=dst,
        original_path=original,
    )


__all__ = ["RecoverResult", "TRUNCATION_ERRORS", "is_complete", "is_encrypted_log", "iter_messages", "open_log_file",
           "recover", "resolve_log"]
