"""The shared clock and netns core as the HIL plant uses it (firmware_bridge/clock.py, firmware_bridge/netns.py):
absolute sleeps that a signal may end early (the plant's stop flag), timer slack, the lo-only guard."""
from __future__ import annotations

import signal
import sys
import time

import pytest

from firmware_bridge import netns
from firmware_bridge.clock import MonotonicClock, set_timer_slack_ns

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="clock_nanosleep/prctl are Linux calls")


def _sleep_with_alarm(clock: MonotonicClock, sleep_s: float, alarm_s: float) -> float:
    """Sleep to now + sleep_s with SIGALRM after alarm_s; returns the time slept, s."""
    fired = []
    old = signal.signal(signal.SIGALRM, lambda *_: fired.append(1))
    try:
        t0 = time.monotonic_ns()
        signal.setitimer(signal.ITIMER_REAL, alarm_s)
        clock.sleep_until_ns(t0 + int(sleep_s * 1e9))
        slept = (time.monotonic_ns() - t0) / 1e9
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert fired == [1]
    return slept


@linux_only
def test_wake_on_signal_ends_the_sleep_early_and_the_default_sleeps_on():
    woken = MonotonicClock(wake_on_signal=True)
    assert woken.absolute_sleep
    assert _sleep_with_alarm(woken, 30.0, 0.02) < 15.0          # returned on the signal, not at the deadline
    assert _sleep_with_alarm(MonotonicClock(), 0.3, 0.02) >= 0.3  # default: never before the deadline


@linux_only
def test_timer_slack():
    assert set_timer_slack_ns(1) is True
    with pytest.raises(ValueError, match="slack_ns=0"):
        set_timer_slack_ns(0)


def test_private_netns_guard_names_the_interfaces():
    netns.require_private_netns(["lo"])
    with pytest.raises(netns.PrivateNetnsRequired, match=r"refusing to open udp_multicast: .*\['eth0', 'lo'\]"):
        netns.require_private_netns(["eth0", "lo"])
    with pytest.raises(netns.PrivateNetnsRequired, match="refusing to open DDS: .*run it here"):
        netns.require_private_netns(["eth0"], what="DDS", howto="run it here")
