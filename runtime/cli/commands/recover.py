"""``exo recover``: make a log truncated by a crash (SIGKILL, power loss) complete again."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from runtime.cli.arguments import add_command
from runtime.cli.exit_codes import EXIT_OK


def cmd_recover(args: argparse.Namespace) -> int:
    from runtime.telemetry.read import is_complete, recover, resolve_log

    log = Path(args.log)
    if (log / "telemetry").is_dir():
        log = log / "telemetry"
    _, mcap_path = resolve_log(log)
    if is_complete(mcap_path) and not args.force:
        print(f"{mcap_path} is complete; nothing to recover (use --force to rewrite anyway)")
        return EXIT_OK
    res = recover(log)
    print(f"recovered {res.messages} messages on {len(res.topics)} topics into {res.out_path}"
          + (" (input was truncated)" if res.truncated else ""))
    for topic, n in sorted(res.topics.items()):
        print(f"  {topic}: {n}")
    return EXIT_OK


def register(subparsers: Any) -> None:
    """Add ``recover``."""
    p = add_command(
        subparsers, "recover", help="complete a log truncated by a crash",
        description="Rewrite a log whose writer was killed (no MCAP summary) into a complete rosbag2 folder; the "
                    "original file is kept as *.truncated. A complete log is left as it is unless --force.",
        examples=["exo recover runs/try1"])
    p.add_argument("log", help="run folder, rosbag2 folder or .mcap file")
    p.add_argument("--force", action="store_true", help="rewrite even a complete file")
    p.set_defaults(fn=cmd_recover)
