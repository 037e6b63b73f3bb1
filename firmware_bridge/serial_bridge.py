"""Serial sensor bridge: a reader thread that turns a serial byte stream into latest samples.

Stdlib + pyserial only (``firmware_bridge`` imports nothing of ours).

``SerialSensorBridge`` opens a port with ``serial.serial_for_url`` (so
``/dev/ttyACM0``, ``loop://``, ``socket://host:port``, ``rfc2217://`` ... all
work), and a daemon thread reads it, decodes frames with
:class:`~firmware_bridge.serial_protocol.FrameDecoder` and keeps the latest sample
per ``(sensor_type, sensor_id)`` together with its host receive time
(``time.monotonic_ns()`` right after the read that completed the frame; all frames
completed by one read share that time).

The reader thread never raises: a serial exception becomes a recorded fault
``(source, kind, value, t_ns)`` and, with ``reconnect=True``, the port is reopened
with backoff. Staleness is the consumer's call: compare ``rx_time_ns`` with
``time.monotonic_ns()``.
"""
from __future__ import annotations

import collections
import threading
import time
from typing import Any, Callable, NamedTuple

import serial

from .serial_protocol import FrameDecoder, Sample, SensorType

__all__ = ["BridgeFault", "SerialSensorBridge"]


class BridgeFault(NamedTuple):
    """A fault recorded by the bridge; a plain ``(source, kind, value, t_ns)`` tuple.

    ``kind`` is one of ``SerialSensorBridge.FAULT_*``; ``value`` is the error text;
    ``t_ns`` is ``time.monotonic_ns()`` when it was recorded.
    """

    source: str
    kind: str
    value: str
    t_ns: int


class SerialSensorBridge:
    """Read framed sensor samples from a serial port in a background thread.

    Use as a context manager, or call :meth:`close`. Thread-safe accessors:
    :meth:`latest`, :meth:`snapshot`, :meth:`stats`, :meth:`faults`,
    :meth:`wait_for_sample`, :meth:`write`.
    """

    FAULT_SERIAL_ERROR = "SERIAL_ERROR"  # read raised (device unplugged, EIO, ...)
    FAULT_REOPEN_FAILED = "SERIAL_REOPEN_FAILED"  # first failed reconnect attempt of an outage
    FAULT_INTERNAL = "INTERNAL_ERROR"  # a bug: unexpected exception in the reader loop

    def __init__(
        self,
        port_url: str,
        baudrate: int = 921600,
        *,
        read_timeout_s: float = 0.02,
        max_frame_len: int = 64,
        reconnect: bool = True,
        reconnect_backoff_s: tuple[float, float] = (0.05, 1.0),
        max_faults: int = 256,
        source: str | None = None,
        serial_factory: Callable[..., Any] = serial.serial_for_url,
        serial_kwargs: dict[str, Any] | None = None,
        start: bool = True,
    ) -> None:
        """Open ``port_url`` at ``baudrate`` (bit/s) and start the reader thread.

        ``read_timeout_s``: longest blocking read, s (bounds close() latency when
        the port cannot cancel reads). ``max_frame_len``: decoder limit, bytes.
        ``reconnect_backoff_s``: (first, max) wait between reopen attempts, s.
        ``max_faults``: faults kept (oldest dropped). ``serial_factory``: called as
        ``serial_factory(port_url, baudrate=..., timeout=..., **serial_kwargs)``.
        Raises ``serial.SerialException`` (or ``ValueError``) if the first open fails.
        """
        self.port_url = port_url
        self.baudrate = baudrate
        self.source = source or f"serial:{port_url}"
        self._read_timeout_s = read_timeout_s
        self._reconnect = reconnect
        self._backoff = reconnect_backoff_s
        self._factory = serial_factory
        self._serial_kwargs = dict(serial_kwargs or {})
        self._decoder = FrameDecoder(max_frame_len=max_frame_len)
        self._lock = threading.Lock()
        self._new_sample = threading.Condition(self._lock)
        self._latest: dict[tuple[int, int], tuple[Sample, int]] = {}
        self._faults: collections.deque[BridgeFault] = collections.deque(maxlen=max_faults)
        self._read_errors = 0
        self._bytes_read = 0
        self._reopens = 0
        self._stop = threading.Event()
        self._ser = self._open()
        self._thread = threading.Thread(target=self._run, name=f"serial-bridge {port_url}", daemon=True)
        if start:
            self._thread.start()

    # -- public API ---------------------------------------------------------

    def start(self) -> None:
        """Start the reader thread (only needed with ``start=False``)."""
        if not self._thread.is_alive() and not self._stop.is_set():
            self._thread.start()

    def latest(self, sensor_type: int | SensorType, sensor_id: int) -> tuple[Sample, int] | None:
        """Latest ``(sample, rx_time_ns)`` of a sensor, or None if none was received yet.

        ``rx_time_ns`` is host ``time.monotonic_ns()`` at reception.
        """
        with self._lock:
            return self._latest.get((int(sensor_type), sensor_id))

    def snapshot(self) -> dict[tuple[int, int], tuple[Sample, int]]:
        """Copy of all latest samples: ``{(sensor_type, sensor_id): (sample, rx_time_ns)}``."""
        with self._lock:
            return dict(self._latest)

    def wait_for_sample(
        self,
        sensor_type: int | SensorType,
        sensor_id: int,
        timeout_s: float,
        min_sequence: int | None = None,
    ) -> tuple[Sample, int] | None:
        """Block until a sample of that sensor is present (with ``sequence >= min_sequence``
        if given); return it, or None after ``timeout_s`` seconds."""
        key = (int(sensor_type), sensor_id)

        def ready() -> bool:
            entry = self._latest.get(key)
            return entry is not None and (min_sequence is None or entry[0].sequence >= min_sequence)

        with self._new_sample:
            if self._new_sample.wait_for(ready, timeout=timeout_s):
                return self._latest[key]
            return None

    def stats(self) -> dict[str, int]:
        """Decoder counters plus ``read_errors``, ``bytes_read`` and ``reopens`` (successful reconnects)."""
        with self._lock:
            out = self._decoder.counters()
            out["read_errors"] = self._read_errors
            out["bytes_read"] = self._bytes_read
            out["reopens"] = self._reopens
            return out

    def faults(self) -> list[BridgeFault]:
        """Faults recorded so far (at most ``max_faults``, oldest first)."""
        with self._lock:
            return list(self._faults)

    def write(self, data: bytes) -> int:
        """Write raw bytes to the port (e.g. board commands; on ``loop://`` they come back).

        Raises ``serial.SerialException`` while the port is closed or reconnecting.
        """
        ser = self._ser
        if ser is None:
            raise serial.SerialException(f"{self.port_url}: port not open (closed or reconnecting)")
        return ser.write(data)

    @property
    def is_running(self) -> bool:
        """True while the reader thread is alive."""
        return self._thread.is_alive()

    def close(self, timeout_s: float = 1.0) -> bool:
        """Stop the reader, join it within ``timeout_s`` seconds, close the port.

        Returns True if the thread ended in time. Idempotent.
        """
        self._stop.set()
        ser = self._ser
        try:
            if ser is not None and hasattr(ser, "cancel_read"):
                ser.cancel_read()
        except Exception:  # noqa: BLE001 - best effort, the read timeout bounds the wait anyway
            pass
        joined = True
        if self._thread.is_alive():
            self._thread.join(timeout_s)
            joined = not self._thread.is_alive()
        self._close_port()
        return joined

    def __enter__(self) -> "SerialSensorBridge":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reader thread ------------------------------------------------------

    def _open(self) -> Any:
        return self._factory(
            self.port_url, baudrate=self.baudrate, timeout=self._read_timeout_s, **self._serial_kwargs
        )

    def _close_port(self) -> None:
        ser, self._ser = self._ser, None
        if ser is not None:
            try:
                ser.close()
            except Exception:  # noqa: BLE001 - closing a dead port may fail; nothing to do
                pass

    def _record_fault(self, kind: str, value: object) -> None:
        fault = BridgeFault(self.source, kind, str(value), time.monotonic_ns())
        with self._lock:
            self._faults.append(fault)

    def _run(self) -> None:
        try:
            self._read_loop()
        except BaseException as e:  # noqa: BLE001 - never let the thread die with a traceback
            self._record_fault(self.FAULT_INTERNAL, repr(e))

    def _read_loop(self) -> None:
        while not self._stop.is_set():
            ser = self._ser
            if ser is None:
                if not self._reopen():
                    return
                continue
            try:
                data = ser.read(ser.in_waiting or 1)
            except Exception as e:  # noqa: BLE001 - SerialException, OSError, TypeError on a closed fd...
                if self._stop.is_set():
                    return
                with self._lock:
                    self._read_errors += 1
                self._record_fault(self.FAULT_SERIAL_ERROR, f"{type(e).__name__}: {e}")
                if not self._reconnect:
                    return
                self._close_port()
                continue
            if not data:
                continue
            rx_ns = time.monotonic_ns()
            with self._lock:
                self._bytes_read += len(data)
                samples = self._decoder.feed(data)
                if samples:
                    for s in samples:
                        self._latest[(int(s.SENSOR_TYPE), s.sensor_id)] = (s, rx_ns)
                    self._new_sample.notify_all()

    def _reopen(self) -> bool:
        """Reopen with backoff until it works or close() is called; False if stopped."""
        delay, max_delay = self._backoff
        reported = False
        while not self._stop.wait(delay):
            try:
                ser = self._open()
            except Exception as e:  # noqa: BLE001
                if not reported:  # one fault per outage, not one per attempt
                    self._record_fault(self.FAULT_REOPEN_FAILED, f"{type(e).__name__}: {e}")
                    reported = True
                delay = min(delay * 2.0, max_delay)
                continue
            with self._lock:
                self._decoder.reset()  # a partial frame from before the error is garbage
                self._reopens += 1
            self._ser = ser
            if self._stop.is_set():
                self._close_port()
                return False
            return True
        return False
