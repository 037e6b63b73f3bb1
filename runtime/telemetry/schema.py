"""ROS 2 message schemas of the runtime telemetry (rosbags typestore + CDR).

The project's own message definitions live in ``runtime/msg/*.msg`` (package
``exo_runtime``, type names ``exo_runtime/msg/<Name>``).  They are registered on
top of the ROS 2 Jazzy standard types (``std_msgs``, ``sensor_msgs``,
``builtin_interfaces``, ...) of :mod:`rosbags`, so one typestore serialises and
deserialises everything the runtime logs.

Time conventions: ``*_ns`` are integer nanoseconds, ``*_s`` float seconds.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.base import Nodetype
from rosbags.typesys.store import Typestore

PACKAGE_NAME = "exo_runtime"
MSG_DIR = Path(__file__).resolve().parents[1] / "msg"

#: Type names of the project's own messages, in ``runtime/msg``.
CUSTOM_MSGTYPES: tuple[str, ...] = (
    f"{PACKAGE_NAME}/msg/CycleTiming",
    f"{PACKAGE_NAME}/msg/TorqueCommand",
    f"{PACKAGE_NAME}/msg/Fault",
    f"{PACKAGE_NAME}/msg/CanFrame",
    f"{PACKAGE_NAME}/msg/LoopSummary",
)

_TIME_MSGTYPE = "builtin_interfaces/msg/Time"
_NUMPY_DTYPES = {
    "bool": np.bool_,
    "byte": np.uint8,
    "char": np.uint8,
    "int8": np.int8,
    "uint8": np.uint8,
    "int16": np.int16,
    "uint16": np.uint16,
    "int32": np.int32,
    "uint32": np.uint32,
    "int64": np.int64,
    "uint64": np.uint64,
    "float32": np.float32,
    "float64": np.float64,
}

_lock = threading.Lock()
_typestore: Typestore | None = None


def _build_typestore() -> Typestore:
    store = get_typestore(Stores.ROS2_JAZZY)
    typs: dict[str, Any] = {}
    found = {f"{PACKAGE_NAME}/msg/{p.stem}": p for p in sorted(MSG_DIR.glob("*.msg"))}
    missing = [t for t in CUSTOM_MSGTYPES if t not in found]
    if missing:
        raise FileNotFoundError(f"message definitions missing in {MSG_DIR}: {missing}")
    for msgtype, path in found.items():
        typs.update(get_types_from_msg(path.read_text(encoding="utf-8"), msgtype))
    store.register(typs)
    return store


def typestore() -> Typestore:
    """Return the (cached, process-wide) typestore: ROS 2 Jazzy types + ``exo_runtime/msg/*``."""
    global _typestore
    store = _typestore
    if store is None:
        with _lock:
            if _typestore is None:
                _typestore = _build_typestore()
            store = _typestore
    return store


def _check_known(msgtype: str) -> None:
    if msgtype not in typestore().fielddefs:
        raise KeyError(
            f"unknown message type {msgtype!r}: not a ROS 2 Jazzy type and not in {MSG_DIR}"
        )


def message_definition(msgtype: str) -> str:
    """Full ROS 2 ``.msg`` definition of *msgtype* with all dependencies appended.

    This is the text stored in MCAP schemas with encoding ``ros2msg`` (as rosbag2,
    mcap-ros2-support and Foxglove expect): the top-level fields, then for each
    dependency a line of 80 ``=``, ``MSG: pkg/Name`` and its fields.
    """
    _check_known(msgtype)
    text, _md5 = typestore().generate_msgdef(msgtype, ros_version=2)
    return text


def type_hash(msgtype: str) -> str:
    """REP-2011 type description hash (``RIHS01_<sha256 hex>``) of *msgtype*."""
    _check_known(msgtype)
    return typestore().hash_rihs01(msgtype)


def type_hash_from_definition(msgtype: str, msgdef: str) -> str:
    """REP-2011 hash of *msgtype* as defined by the ``ros2msg`` text *msgdef* (e.g. from a file).

    Computed the way :class:`rosbags.highlevel.AnyReader` checks it, independent of
    the project's current ``.msg`` files.
    """
    store = get_typestore(Stores.EMPTY)
    store.register(get_types_from_msg(msgdef, msgtype))
    return store.hash_rihs01(msgtype)


def msg_class(msgtype: str) -> type:
    """The message class of *msgtype* (construct with all fields as keyword arguments)."""
    _check_known(msgtype)
    return typestore().types[msgtype]


def time_from_ns(t_ns: int) -> Any:
    """A ``builtin_interfaces/msg/Time`` for *t_ns* (ns since the epoch, >= 0)."""
    sec, nanosec = divmod(int(t_ns), 1_000_000_000)
    return typestore().types[_TIME_MSGTYPE](sec=sec, nanosec=nanosec)


def time_to_ns(stamp: Any) -> int:
    """Nanoseconds of a ``builtin_interfaces/msg/Time``."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def make(msgtype: str, **fields: Any) -> Any:
    """Build a message of *msgtype*, coercing convenient Python values.

    * sequences of numeric/bool base types (``float64[]``, ``uint8[]``, ...) given as
      lists/tuples become numpy arrays of the right dtype (rosbags requires arrays);
    * a ``builtin_interfaces/Time`` field given as an ``int`` is taken as ns since
      the epoch.

    Missing or unknown fields raise ``TypeError`` naming them.
    """
    _check_known(msgtype)
    store = typestore()
    _consts, fielddefs = store.fielddefs[msgtype]
    names = [name for name, _ in fielddefs]
    unknown = sorted(set(fields) - set(names))
    missing = [n for n in names if n not in fields]
    if unknown or missing:
        raise TypeError(f"{msgtype}: unknown fields {unknown}, missing fields {missing}")
    kwargs: dict[str, Any] = {}
    for name, (nodetype, desc) in fielddefs:
        value = fields[name]
        if nodetype == Nodetype.NAME and desc == _TIME_MSGTYPE and isinstance(value, int):
            value = time_from_ns(value)
        elif nodetype in (Nodetype.SEQUENCE, Nodetype.ARRAY):
            (subtype, subdesc), _size = desc
            if subtype == Nodetype.BASE and subdesc[0] in _NUMPY_DTYPES:
                if not isinstance(value, np.ndarray) or value.dtype != _NUMPY_DTYPES[subdesc[0]]:
                    value = np.asarray(value, dtype=_NUMPY_DTYPES[subdesc[0]])
            elif not isinstance(value, list):
                value = list(value)
        kwargs[name] = value
    return store.types[msgtype](**kwargs)


def serialize(msg: Any) -> bytes:
    """CDR (little-endian, as ROS 2 on x86/ARM) bytes of a typestore message object."""
    return bytes(typestore().serialize_cdr(msg, msg.__msgtype__))


def deserialize(data: bytes | memoryview, msgtype: str) -> Any:
    """Decode CDR *data* as *msgtype* with the project's typestore."""
    _check_known(msgtype)
    return typestore().deserialize_cdr(data, msgtype)


__all__ = [
    "CUSTOM_MSGTYPES",
    "MSG_DIR",
    "PACKAGE_NAME",
    "deserialize",
    "make",
    "message_definition",
    "msg_class",
    "serialize",
    "time_from_ns",
    "time_to_ns",
    "type_hash",
    "type_hash_from_definition",
    "typestore",
]
