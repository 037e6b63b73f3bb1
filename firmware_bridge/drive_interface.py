"""The drive interface: what the torque loop asks of any actuator back end.

Modelled on ros2_control's hardware interface (``read``/``write`` return a
``return_type``) and opensourceleg's actuator base classes (a context manager that
releases the hardware).  It lives here, below ``runtime/``, so that back ends in
``firmware_bridge`` (:class:`firmware_bridge.ak_can.AkCanDrive`) and ``runtime``
(``runtime.control.drive.SimulatedDrive``) derive from the same class;
``runtime.control.drive.Drive`` is this :class:`DriveBase`.

Joint side, SI units: torque N*m, angle rad (knee flexion positive), velocity rad/s;
``t_ns`` is the caller's monotonic cycle time (ns).

Results: :meth:`DriveBase.read` and :meth:`DriveBase.write` return a :class:`DriveResult`;
the reason for anything but ``OK`` is reported as a fault by :meth:`DriveBase.poll_faults`
(the safety supervisor acts on faults; the result is the cycle's verdict, counted by the loop).

Enabling is never implied: ``with drive:`` does *not* enable; the caller sends zero torque,
then calls ``enable``.  Leaving the ``with`` block (or ``close``) disables the drive if it is
enabled and releases the bus, once (idempotent).

Imports: stdlib only.
"""
from __future__ import annotations

import abc
import enum
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Protocol, Self

__all__ = ["DriveResult", "FaultRecord", "JointStateBuffer", "DriveBase"]

#: One drive fault: ``(source, kind, value, t_ns)``; ``kind`` is a ``controllers.safety.FaultKind`` value.
FaultRecord = tuple[str, str, float, int]


class DriveResult(enum.Enum):
    """Outcome of one ``read``/``write`` (ros2_control's ``return_type``)."""

    OK = "ok"                   #: done as asked
    ERROR = "error"             #: a bus/drive problem this cycle (details: ``poll_faults``)
    DEACTIVATE = "deactivate"   #: the hardware asks to stop assisting (e.g. an e-stop frame)


class JointStateBuffer(Protocol):
    """Per-joint lists a ``read`` fills in place (``runtime.control.drive.JointStates``)."""

    position_rad: list[float]
    velocity_rad_s: list[float]
    torque_nm: list[float]
    temperature_c: list[float | None]
    error_code: list[int | None]
    rx_ns: list[int]


class DriveBase(abc.ABC):
    """Base class of the torque loop's actuator back ends.

    Subclasses implement ``enable``, ``write``, ``read``, ``disable`` and keep ``enabled``
    up to date; they override ``poll_faults`` if they detect faults, ``velocity_check`` if
    they can check their velocity table, and ``_release`` to free the bus.
    """

    #: True between ``enable`` and ``disable`` (subclasses set it or define a property).
    enabled: bool = False
    _closed: bool = False

    @abc.abstractmethod
    def enable(self, t_ns: int) -> None:
        """Send zero torque, then enter the control mode (never enable before zero is sent)."""

    @abc.abstractmethod
    def write(self, torque_nm: Sequence[float], t_ns: int) -> DriveResult:
        """Command joint torques, N*m (already limited by the safety supervisor)."""

    @abc.abstractmethod
    def read(self, out: JointStateBuffer, t_ns: int) -> DriveResult:
        """Fill ``out`` with the latest state."""

    @abc.abstractmethod
    def disable(self, t_ns: int) -> None:
        """Final zero torque, then leave the control mode; nothing stays latched in the drive."""

    def poll_faults(self) -> list[FaultRecord]:
        """Faults recorded since the last call, oldest first (none by default)."""
        return []

    def velocity_check(self, *, min_samples: int = 50, tolerance: float = 0.05) -> tuple[bool, str] | None:
        """Reported velocity vs position derivative: ``(ok, text)``; None: this back end has no such check."""
        return None

    @property
    def closed(self) -> bool:
        """True once ``close`` (or the end of a ``with`` block) ran."""
        return self._closed

    def close(self) -> None:
        """Disable if enabled, then release the bus; later calls do nothing."""
        if self._closed:
            return
        self._closed = True
        try:
            if self.enabled:
                self.disable(time.monotonic_ns())
        finally:
            self._release()

    def _release(self) -> None:
        """Free the bus or plant (nothing by default)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
