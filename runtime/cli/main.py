"""``exo``: the one command-line entry point of the runtime.

Every subcommand lives in ``runtime/cli/commands/<name>.py`` and adds itself with ``register(subparsers)``;
this module only builds the top-level parser from that registry and dispatches (``exo <command> --help``).
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import textwrap
from collections.abc import Sequence

from runtime.cli.exit_codes import EXIT_CODES_TEXT, EXIT_USAGE

_INTRO = ("exo: the exoskeleton controller runtime. 'exo demo' runs the main job (video -> estimation chain -> "
          "assistance -> safety -> CAN -> emulated exoskeleton drive); 'exo <command> --help' describes each "
          "command with examples that run as given from the repository root.")


def _register_command_modules(sub: argparse._SubParsersAction) -> None:
    """Add the subcommands defined in ``runtime/cli/commands/*.py``.

    Each module there exposes ``register(subparsers) -> None`` and imports its heavy dependencies inside the
    command function, so ``exo --help`` stays fast and works without the optional extras installed."""
    from runtime.cli import commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        importlib.import_module(f"runtime.cli.commands.{info.name}").register(sub)


def command_table(sub: argparse._SubParsersAction) -> list[tuple[str, str]]:
    """(name, one-line help) of every registered subcommand, sorted by name."""
    return sorted((a.dest, a.help or "") for a in sub._get_subactions())


def _format_table(rows: list[tuple[str, str]]) -> str:
    width = max(len(name) for name, _ in rows) + 2
    lines = []
    for name, text in rows:
        wrapped = textwrap.wrap(text, 100 - width - 2, break_on_hyphens=False) or [""]
        lines.append(f"  {name:<{width}}{wrapped[0]}")
        lines += [f"  {'':<{width}}{more}" for more in wrapped[1:]]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The ``exo`` parser: every registered subcommand, listed with its one-line help in ``exo --help``."""
    parser = argparse.ArgumentParser(prog="exo", formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="<command>", help=argparse.SUPPRESS)
    parser.usage = "exo [-h] <command> ..."      # after add_subparsers: the subcommands' prog stays 'exo <name>'
    parser.set_defaults(fn=None)                 # each subcommand sets its own
    _register_command_modules(sub)
    rows = command_table(sub)
    parser.description = f"{textwrap.fill(_INTRO, 100, break_on_hyphens=False)}\n\ncommands ({len(rows)}):\n{_format_table(rows)}"
    parser.epilog = EXIT_CODES_TEXT
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``), run the command, map bad input to exit 2 with its message."""
    from runtime.core.config import ConfigError

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.fn is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.fn(args)
    except ConfigError as exc:
        print(f"configuration rejected:\n{exc}", file=sys.stderr)
        return EXIT_USAGE
    except (FileNotFoundError, FileExistsError, LookupError) as exc:
        print(f"exo {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ValueError as exc:          # bad input named by the code that found it: field and value
        print(f"exo {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
