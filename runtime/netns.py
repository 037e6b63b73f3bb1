"""Keep multicast and DDS traffic inside a private network namespace.

python-can's ``udp_multicast`` bus (and DDS discovery) multicast on every
interface. The rule of this project: they never run on a host network. A
command that needs them re-executes itself under ``unshare -n`` (needs root or
CAP_SYS_ADMIN), with only ``lo`` up and the multicast range routed to it::

    unshare -n -- sh -c 'ip link set lo up && ip route add 239.0.0.0/8 dev lo && exec "$@"' sh <argv>

On a real device with SocketCAN none of this is needed (CAN is not IP).
"""
from __future__ import annotations

import os
import shutil
import socket
import sys

ENV_MARK = "EXO_PRIVATE_NETNS"
SETUP = "ip link set lo up && (ip route add 239.0.0.0/8 dev lo 2>/dev/null || true) && exec \"$@\""


def interfaces() -> list[str]:
    """Interfaces of *this process's* network namespace (``/sys/class/net`` shows the mounter's)."""
    return sorted(name for _, name in socket.if_nameindex())


def in_private_netns() -> bool:
    """True when the only network interface is ``lo`` (nothing can leave this machine)."""
    return interfaces() == ["lo"]


def wrap_command(argv: list[str]) -> list[str]:
    """``argv`` prefixed so it runs in a fresh network namespace with multicast on ``lo``."""
    if not shutil.which("unshare") or not shutil.which("ip"):
        raise RuntimeError("a private network namespace needs 'unshare' (util-linux) and 'ip' (iproute2); "
                           "install them (apt-get install util-linux iproute2) or use SocketCAN/virtual")
    return ["unshare", "-n", "--", "sh", "-c", SETUP, "sh", *argv]


def ensure_private_netns(reason: str) -> None:
    """Re-execute this process inside a private network namespace unless it already is in one.

    Returns only when already isolated; otherwise replaces the process (``os.execvp``).
    """
    if in_private_netns():
        return
    if os.environ.get(ENV_MARK):
        raise RuntimeError(f"{reason}: still on a shared network after unshare ({interfaces()}); refusing to multicast")
    argv = wrap_command([sys.executable, *sys.argv]) if sys.argv and sys.argv[0] else None
    if argv is None:
        raise RuntimeError(f"{reason}: cannot re-execute this process; run it under: {' '.join(wrap_command(['<cmd>']))}")
    os.environ[ENV_MARK] = "1"
    print(f"{reason}: re-running inside a private network namespace (only lo; multicast stays on this machine)",
          flush=True)
    os.execvp(argv[0], argv)
