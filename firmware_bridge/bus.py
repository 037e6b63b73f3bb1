"""The one place that opens a python-can bus: ``virtual``, ``udp_multicast`` or ``socketcan``.

The torque process (``runtime.wiring.make_drive``), the HIL plant (``hil.plant_process``) and
:mod:`firmware_bridge.ak_can` call :func:`open_bus`, so the network rule and the own-frame
setting are the same everywhere:

* ``udp_multicast`` is refused (:class:`~firmware_bridge.netns.PrivateNetnsRequired`, before
  python-can is asked) unless this process's network namespace has only ``lo``
  (:mod:`firmware_bridge.netns`).  python-can refuses ``receive_own_messages=True`` there, yet the
  multicast loopback delivers every frame back to its sender anyway, marked ``is_rx``: whoever
  reads the bus must recognise own frames itself (``AkCanDrive`` compares with what it sent).
* ``virtual``: an in-process bus (tests, offline runs); ``receive_own_messages`` as asked.
* ``socketcan``: a Linux CAN interface (``can0``, ``vcan0``); ``bitrate`` is passed on when given
  (SocketCAN sets it with ``ip link``, not here).

Imports: python-can and :mod:`firmware_bridge.netns` only.
"""
from __future__ import annotations

from typing import Any

import can

from .netns import NETNS_HOWTO, require_private_netns

__all__ = ["INTERFACES", "DEFAULT_UDP_PORT", "open_bus"]

#: The python-can interfaces this project opens.
INTERFACES = ("virtual", "udp_multicast", "socketcan")
#: python-can's default UDP port for ``udp_multicast``.
DEFAULT_UDP_PORT = 43113


def open_bus(interface: str, channel: str, *, port: int | None = None, bitrate: int | None = None,
             receive_own_messages: bool = False, fd: bool = True,
             netns_howto: str = NETNS_HOWTO) -> can.BusABC:
    """Open ``interface`` on ``channel``.

    ``port``: UDP port, ``udp_multicast`` only (default :data:`DEFAULT_UDP_PORT`); ``bitrate``:
    bit/s, ``socketcan`` only (both ignored by the other interfaces, so a caller can pass its
    whole bus configuration); ``receive_own_messages``: deliver our own frames back to us
    (``virtual``/``socketcan``; must be False for ``udp_multicast``); ``fd``: accept CAN FD frames
    (``udp_multicast`` only; False drops them); ``netns_howto``: the end of the refusal text.
    """
    if interface not in INTERFACES:
        raise ValueError(f"interface={interface!r}: allowed {', '.join(INTERFACES)}")
    if not isinstance(channel, str) or not channel:
        raise ValueError(f"channel={channel!r}: needs a non-empty string (e.g. 239.0.0.1, vcan0)")
    kwargs: dict[str, Any] = {}
    if interface == "udp_multicast":
        require_private_netns(what="udp_multicast", howto=netns_howto)
        if receive_own_messages:
            raise ValueError("receive_own_messages=True: not supported by udp_multicast (its multicast "
                             "loopback delivers own frames anyway)")
        p = DEFAULT_UDP_PORT if port is None else port
        if isinstance(p, bool) or not isinstance(p, int) or not 1 <= p <= 65535:
            raise ValueError(f"port={p!r}: allowed 1..65535")
        return can.Bus(interface="udp_multicast", channel=channel, port=p, receive_own_messages=False, fd=fd)
    if interface == "socketcan" and bitrate is not None:
        if isinstance(bitrate, bool) or not isinstance(bitrate, int) or bitrate <= 0:
            raise ValueError(f"bitrate={bitrate!r}: allowed an int > 0 (bit/s)")
        kwargs["bitrate"] = bitrate
    return can.Bus(interface=interface, channel=channel, receive_own_messages=bool(receive_own_messages), **kwargs)
