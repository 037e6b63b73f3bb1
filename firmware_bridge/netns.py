"""Keep multicast and DDS traffic inside a private network namespace.

python-can's ``udp_multicast`` bus (and DDS discovery) multicast on every
interface. The rule of this project: they never run on a host network. A
command that needs them re-executes itself under ``unshare -n`` (needs root or
CAP_SYS_ADMIN), with only ``lo`` up and the multicast range routed to it::

    unshare -n -- sh -c 'ip link set lo up && ip route add 239.0.0.0/8 dev lo && exec "$@"' sh <argv>

On a real device with SocketCAN none of this is needed (CAN is not IP).

DDS (rclpy over Fast DDS, Cyclone DDS) follows the same rule: every participant runs in a
private network namespace *and* with ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` and a Cyclone
configuration bound to ``lo`` (:func:`dds_environment`), unless the operator puts a device on a
ROS 2 network on purpose (``EXO_DDS_HOST_NETWORK=1``, see :func:`require_isolated_dds`).
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

ENV_MARK = "EXO_PRIVATE_NETNS"
SETUP = "ip link set lo up && (ip route add 239.0.0.0/8 dev lo 2>/dev/null || true) && exec \"$@\""


ENV_DDS_HOST = "EXO_DDS_HOST_NETWORK"
#: Cyclone DDS configuration: only the loopback interface, no multicast at all, discovery by unicast to
#: 127.0.0.1 (participant indices probed on localhost) -- which is also how Fast DDS discovers with
#: ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST, so rclpy nodes and Cyclone-only processes find each other.
CYCLONE_LO_CONFIG = ("<CycloneDDS><Domain><General><Interfaces><NetworkInterface name=\"lo\"/></Interfaces>"
                     "<AllowMulticast>false</AllowMulticast></General><Discovery><ParticipantIndex>auto</ParticipantIndex>"
                     "<Peers><Peer address=\"127.0.0.1\"/></Peers></Discovery></Domain></CycloneDDS>")
DDS_ENV = {"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "CYCLONEDDS_URI": CYCLONE_LO_CONFIG}


def dds_environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """*base* (default ``os.environ``) with the DDS settings that keep discovery on this host."""
    env = dict(os.environ if base is None else base)
    env.update(DDS_ENV)
    return env


def require_isolated_dds(what: str) -> None:
    """Refuse to start a DDS participant on a shared network.

    Allowed in a private network namespace, or when ``EXO_DDS_HOST_NETWORK=1`` says the operator
    wants this device on a ROS 2 network. Sets ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` and the
    loopback-only Cyclone configuration unless they are already set.
    """
    if not in_private_netns() and os.environ.get(ENV_DDS_HOST) != "1":
        raise RuntimeError(f"{what}: refusing to start DDS on a shared network ({interfaces()}); run it inside a "
                           f"private network namespace ({' '.join(wrap_command(['<cmd>']))}) or set "
                           f"{ENV_DDS_HOST}=1 to put this device on a ROS 2 network on purpose")
    for k, v in DDS_ENV.items():
        os.environ.setdefault(k, v)


def run_isolated(argv: list[str], *, timeout: float, env: Mapping[str, str] | None = None,
                 cwd: str | None = None) -> subprocess.CompletedProcess:
    """Run *argv* in a fresh private network namespace with :func:`dds_environment`; capture text output."""
    return subprocess.run(wrap_command(argv), env=dds_environment(env), cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, check=False)


def netns_available() -> tuple[bool, str]:
    """Whether a private network namespace can be made here, and if not why (for test skips)."""
    if not shutil.which("unshare") or not shutil.which("ip"):
        return False, "needs unshare (util-linux) and ip (iproute2) for a private network namespace"
    p = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True, check=False)
    if p.returncode != 0:
        return False, f"unshare -n not permitted here (needs root or CAP_SYS_ADMIN): {p.stderr.strip()}"
    return True, ""


def interfaces() -> list[str]:
    """Interfaces of *this process's* network namespace (``/sys/class/net`` shows the mounter's).

    ``socket.if_nameindex()`` asks the kernel (netlink) for the caller's namespace; where that
    fails, ``/proc/self/net/dev`` (also per namespace) is read instead.
    """
    try:
        return sorted(name for _, name in socket.if_nameindex())
    except OSError:
        lines = Path("/proc/self/net/dev").read_text().splitlines()[2:]
        return sorted(line.split(":", 1)[0].strip() for line in lines if ":" in line)


def in_private_netns() -> bool:
    """True when the only network interface is ``lo`` (nothing can leave this machine)."""
    return interfaces() == ["lo"]


#: How to run a udp_multicast user in a private namespace (the end of :class:`PrivateNetnsRequired`'s text).
NETNS_HOWTO = ("run it inside a private network namespace: unshare -n sh -c 'ip link set lo up && "
               "ip route add 239.0.0.0/8 dev lo && exec <command>' (as root; see firmware_bridge/netns.py)")


class PrivateNetnsRequired(RuntimeError):
    """udp_multicast (or other multicast) was asked for outside a lo-only network namespace."""


def require_private_netns(names: Sequence[str] | None = None, *, what: str = "udp_multicast",
                          howto: str = NETNS_HOWTO) -> None:
    """Raise :class:`PrivateNetnsRequired` unless the only network interface is ``lo``.

    ``names``: the interfaces to judge (default: :func:`interfaces` of this process);
    ``what``: what is refused (named in the message); ``howto``: the message's last part.
    """
    found = list(interfaces() if names is None else names)
    if found != ["lo"]:
        raise PrivateNetnsRequired(
            f"refusing to open {what}: this process's network namespace has interfaces {found}, need exactly "
            f"['lo'] (multicast must never reach the host network); {howto}")


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
