"""``exo can``: AK-series MIT frames: encode values into ``candump -L`` lines, decode candump / python-can log lines.

``encode`` prints a full ``candump -L`` line, ``(timestamp) iface ID#DATA``, which ``canplayer``, python-can's
``can.LogReader`` and ``exo can decode`` all read. ``decode`` reads bare ``ID#DATA`` (cansend syntax), ``candump -L``
lines, candump's default spaced form and python-can's canutils log lines (ending in `` R``/`` T``)."""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from typing import Any

from runtime.cli.arguments import add_command
from runtime.cli.exit_codes import EXIT_FAILED, EXIT_OK

#: python-can's CanutilsLogWriter ends a data frame's line with its direction: `` R`` (received) / `` T`` (sent).
_DIRECTION = re.compile(r"#\S*\s+[RT]$")


def candump_line(timestamp_s: float, iface: str, frame: str) -> str:
    """``(1733500000.000000) can0 001#...``: one ``candump -L`` line (timestamp in s since the epoch)."""
    return f"({timestamp_s:.6f}) {iface} {frame}"


def strip_direction(line: str) -> str:
    """A python-can canutils log line without its trailing `` R``/`` T``; other lines unchanged."""
    text = line.strip()
    return text[:-2].rstrip() if _DIRECTION.search(text) else text


def _iface(text: str) -> str:
    if not text or any(c.isspace() for c in text) or "#" in text or "(" in text:
        raise argparse.ArgumentTypeError(f"{text!r}: an interface name is one word without '#' or '(' (e.g. can0)")
    return text


def _timestamp(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds since the epoch") from None
    if not (math.isfinite(value) and value >= 0.0):
        raise argparse.ArgumentTypeError(f"{text!r}: must be a finite number of seconds >= 0")
    return value


def cmd_can_encode(args: argparse.Namespace) -> int:
    from firmware_bridge import ak_mit
    from firmware_bridge.motor_tables import limits_for

    if args.special:
        data = {"enter": ak_mit.ENTER_MOTOR_MODE, "exit": ak_mit.EXIT_MOTOR_MODE, "zero": ak_mit.ZERO_POSITION}[args.special]
        clamped: frozenset[str] = frozenset()
    else:
        limits = limits_for(args.model, args.firmware)
        data, clamped = ak_mit.encode_command(limits, args.position, args.velocity, args.kp, args.kd, args.torque)
    frame = ak_mit.frame_to_candump(args.id, data)
    line = candump_line(time.time() if args.timestamp is None else args.timestamp, args.iface, frame)
    if args.json:
        print(json.dumps({"frame": line, "id": args.id, "data": bytes(data).hex().upper(), "clamped": sorted(clamped)}))
    else:
        print(line)
        if clamped:
            print(f"clamped to the {args.model} {args.firmware} table: {', '.join(sorted(clamped))}", file=sys.stderr)
    return EXIT_OK


def cmd_can_decode(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from firmware_bridge import ak_mit
    from firmware_bridge.motor_tables import limits_for

    limits = limits_for(args.model, args.firmware)
    failed = 0
    for line in args.frames:
        try:
            can_id, data = ak_mit.parse_candump(strip_direction(line))
            special = ak_mit.special_frame(data)
            kind = args.kind
            if kind == "auto":
                kind = "special" if special else ("reply" if can_id == args.master_id or len(data) != 8 else "command")
            if special and kind != "reply":
                out = {"frame": line, "id": can_id, "special": special}
            elif kind == "reply":
                out = {"frame": line, "id": can_id, "reply": asdict(ak_mit.decode_reply(
                    limits, data, arbitration_id=can_id, master_id=args.master_id))}
            else:
                out = {"frame": line, "id": can_id, "command": asdict(ak_mit.decode_command(limits, data))}
        except ValueError as exc:
            failed += 1
            out = {"frame": line, "error": str(exc)}
        print(json.dumps(out) if args.json else "  ".join(f"{k}={v}" for k, v in out.items()))
    return EXIT_FAILED if failed else EXIT_OK


#: Frames of the examples, made with the codec (AK80-9, firmware V2: 8-byte commands, 8-byte replies; V1.1: 6-byte
#: replies): a command of 2.5 N*m feed-forward on id 1; a reply of motor 1 (0.5 rad, 1 rad/s, 2 N*m, 30 degC).
_EXAMPLE_COMMAND = "(1733500000.000000) can0 001#800080000000091C"
_EXAMPLE_REPLY_V2 = "000#01851E84F8E31E00"
_EXAMPLE_REPLY_V1 = "000#01851E85B8E3"
_ENCODE_EXAMPLE = "exo can encode --model AK80-9 --firmware V2 --id 1 --torque 2.5"
_DECODE_EXAMPLES = [f"exo can decode --model AK80-9 --firmware V2 '{_EXAMPLE_COMMAND}' '{_EXAMPLE_REPLY_V2}'",
                    f"exo can decode --model AK80-9 --firmware V1.1 '{_EXAMPLE_REPLY_V1}'"]


def register(subparsers: Any) -> None:
    """Add ``can`` with ``encode`` and ``decode``."""
    p = add_command(
        subparsers, "can", help="AK-series MIT frames: encode values, decode candump lines",
        description="Turn values into MIT-mode frame bytes and candump lines into values, for a given motor model and "
                    "firmware (their ranges differ; V2 replies are 8 bytes with temperature and error code, V1.x "
                    "replies 6 bytes). encode prints candump -L lines, '(timestamp) iface ID#DATA', that python-can's "
                    "can.LogReader reads; decode reads those, bare ID#DATA, candump's spaced form and python-can's "
                    "own log lines.",
        examples=[_ENCODE_EXAMPLE, *_DECODE_EXAMPLES])
    can_sub = p.add_subparsers(dest="can_command", metavar="<encode|decode>", required=True)
    pe = add_command(
        can_sub, "encode", help="values -> frame (a candump -L line)",
        description="Encode one MIT command (output-shaft units: rad, rad/s, N*m/rad, N*m*s/rad, N*m) or a special "
                    "frame into a candump -L line, '(timestamp) iface ID#DATA'. Values outside the table are clamped "
                    "and reported.",
        examples=[_ENCODE_EXAMPLE, ("exo can encode --model AK80-9 --firmware V2 --id 1 --kp 5 --position 0.3 "
                                    "--iface vcan0 --timestamp 1733500000")])
    pe.add_argument("--model", default="AK80-9")
    pe.add_argument("--firmware", default="V2")
    pe.add_argument("--id", type=lambda x: int(x, 0), default=1, help="motor CAN id (default: %(default)s)")
    pe.add_argument("--position", type=float, default=0.0, help="rad")
    pe.add_argument("--velocity", type=float, default=0.0, help="rad/s")
    pe.add_argument("--kp", type=float, default=0.0, help="N*m/rad")
    pe.add_argument("--kd", type=float, default=0.0, help="N*m*s/rad")
    pe.add_argument("--torque", type=float, default=0.0, help="feed-forward torque, N*m")
    pe.add_argument("--special", choices=["enter", "exit", "zero"], help="a special frame instead of a command")
    pe.add_argument("--iface", type=_iface, default="can0", help="interface name on the line (default: %(default)s)")
    pe.add_argument("--timestamp", type=_timestamp, help="time on the line, s since the epoch (default: now)")
    pe.add_argument("--json", action="store_true")
    pe.set_defaults(fn=cmd_can_encode)
    pd = add_command(
        can_sub, "decode", help="candump lines -> values",
        description="Decode candump lines: '001#...', '(timestamp) can0 001#...' (candump -L, exo can encode), "
                    "'can0  001   [8]  ..' (candump's default) or python-can's log lines ('... 001#... R'). A frame on "
                    "the master id (default 0) or of reply length is read as a drive reply, others as host commands.",
        examples=_DECODE_EXAMPLES)
    pd.add_argument("frames", nargs="+", help="candump lines")
    pd.add_argument("--model", default="AK80-9")
    pd.add_argument("--firmware", default="V2")
    pd.add_argument("--master-id", type=lambda x: int(x, 0), default=0, help="host id replies are sent to (default: 0)")
    pd.add_argument("--kind", choices=["auto", "reply", "command"], default="auto")
    pd.add_argument("--json", action="store_true")
    pd.set_defaults(fn=cmd_can_decode)
