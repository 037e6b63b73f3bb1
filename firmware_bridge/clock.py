"""Clocks for fixed-rate loops: the real monotonic clock and a deterministic fake.

All times are integer nanoseconds on ``CLOCK_MONOTONIC`` (the clock behind
``time.monotonic_ns``). Sleeping is to an *absolute* deadline
(``clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME)``), so a loop that computes its
deadlines as ``t0 + k * period`` cannot drift however late a single wake-up is.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import sys
import time
from typing import Protocol

CLOCK_MONOTONIC = 1
TIMER_ABSTIME = 1
PR_SET_TIMERSLACK = 29  # linux/prctl.h


class Clock(Protocol):
    """What a fixed-rate loop needs of time: read it, and sleep until a deadline."""

    def now_ns(self) -> int:
        """Monotonic time, ns."""
        ...

    def sleep_until_ns(self, deadline_ns: int) -> None:
        """Return at (or as soon as possible after) ``deadline_ns``; return at once if it passed."""
        ...


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def _load_libc():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


def _load_clock_nanosleep():
    libc = _load_libc()
    try:
        fn = libc.clock_nanosleep
    except AttributeError:  # no libc (None) or no such call
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.POINTER(_Timespec), ctypes.c_void_p]
    fn.restype = ctypes.c_int
    return fn


class MonotonicClock:
    """The real clock: ``CLOCK_MONOTONIC`` with absolute-deadline ``clock_nanosleep``.

    ctypes releases the GIL for the duration of the foreign call, so other threads
    run while a loop sleeps. Where ``clock_nanosleep`` is missing (not Linux), it
    falls back to relative ``time.sleep`` recomputed from the absolute deadline,
    which still cannot drift but wakes later; ``absolute_sleep`` says which is used.

    ``wake_on_signal``: a signal (EINTR) ends ``sleep_until_ns`` early, so a loop can look at a
    stop flag its handler set; by default the sleep goes on to the deadline.
    """

    def __init__(self, *, wake_on_signal: bool = False) -> None:
        self._nanosleep = _load_clock_nanosleep()
        self._ts = _Timespec()
        self._ts_ref = ctypes.byref(self._ts)
        self.absolute_sleep = self._nanosleep is not None
        self.wake_on_signal = wake_on_signal

    def now_ns(self) -> int:
        return time.monotonic_ns()

    def sleep_until_ns(self, deadline_ns: int) -> None:
        if self._nanosleep is None:
            remaining = deadline_ns - time.monotonic_ns()
            if remaining > 0:
                time.sleep(remaining / 1e9)
            return
        self._ts.tv_sec, self._ts.tv_nsec = divmod(deadline_ns, 1_000_000_000)
        while True:
            rc = self._nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, self._ts_ref, None)
            if rc == 0:
                return
            if rc == errno.EINTR and self.wake_on_signal:
                return
            if rc != errno.EINTR:  # clock_nanosleep returns the error number itself
                raise OSError(rc, os.strerror(rc))
            # EINTR: a signal handler ran; the absolute deadline is unchanged, sleep again.


def set_timer_slack_ns(slack_ns: int = 1) -> bool:
    """Set this thread's timer slack (``prctl(PR_SET_TIMERSLACK)``, Linux; default 50 us) to
    ``slack_ns`` ns, so absolute sleeps wake that close to their deadline. False where not possible."""
    if isinstance(slack_ns, bool) or not isinstance(slack_ns, int) or slack_ns < 1:
        raise ValueError(f"slack_ns={slack_ns!r}: allowed an int >= 1")
    libc = _load_libc() if sys.platform.startswith("linux") else None
    if libc is None:
        return False
    try:
        return libc.prctl(PR_SET_TIMERSLACK, ctypes.c_ulong(slack_ns), 0, 0, 0) == 0
    except (AttributeError, OSError):
        return False


class FakeClock:
    """A clock that only moves when told to: every timing rule can be tested without sleeping.

    ``sleep_until_ns`` jumps to the deadline (never backwards); stages simulate their
    own duration with ``advance``. ``wake_latency_ns`` (a callable of the deadline)
    lets a test inject late wake-ups.
    """

    def __init__(self, start_ns: int = 1_000_000_000, wake_latency_ns=None) -> None:
        self._now = int(start_ns)
        self._wake_latency = wake_latency_ns
        self.sleeps: list[int] = []

    def now_ns(self) -> int:
        return self._now

    def advance(self, dt_ns: int) -> None:
        if dt_ns < 0:
            raise ValueError(f"FakeClock.advance: dt_ns = {dt_ns} must be >= 0")
        self._now += int(dt_ns)

    def sleep_until_ns(self, deadline_ns: int) -> None:
        self.sleeps.append(int(deadline_ns))
        if deadline_ns > self._now:
            self._now = int(deadline_ns)
        if self._wake_latency is not None:
            self._now += int(self._wake_latency(deadline_ns))
