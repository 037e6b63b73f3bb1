"""Argument helpers shared by the ``exo`` subcommands: duration flags, help text with runnable examples.

Every subcommand's parser is made with :func:`add_command`, so its description keeps its paragraphs and its
examples print one per line after ``examples:`` (``tests/test_cli_help.py`` runs each of them).
"""
from __future__ import annotations

import argparse
import math
import textwrap
from collections.abc import Sequence
from typing import Any

#: Width of the wrapped description paragraphs (characters).
HELP_WIDTH = 100


def positive_seconds(text: str) -> float:
    """argparse ``type=`` of a duration flag: a finite number of seconds > 0 (argparse names the flag; exit 2)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (math.isfinite(value) and value > 0.0):
        raise argparse.ArgumentTypeError(f"{text!r}: a duration must be a finite number of seconds > 0")
    return value


def help_text(description: str, examples: Sequence[str] = ()) -> str:
    """``description`` (paragraphs separated by blank lines, each wrapped) followed by ``examples:``, one command
    per line, never wrapped. Printed verbatim (RawDescriptionHelpFormatter): write ``%`` as is, not ``%%``."""
    paragraphs = [textwrap.fill(" ".join(p.split()), HELP_WIDTH, break_on_hyphens=False, break_long_words=False)
                  for p in description.strip().split("\n\n") if p.strip()]
    text = "\n\n".join(paragraphs)
    if examples:
        text += "\n\n" + ("example:" if len(examples) == 1 else "examples:") + "\n" + "\n".join(f"  {e}" for e in examples)
    return text


def add_command(subparsers: Any, name: str, *, help: str, description: str,
                examples: Sequence[str] = ()) -> argparse.ArgumentParser:
    """A subcommand parser whose ``--help`` shows ``description`` and then ``examples`` (each a full ``exo ...``
    command line that runs as given from the repository root)."""
    for e in examples:
        if not e.startswith("exo "):
            raise ValueError(f"example={e!r}: must start with 'exo '")
    return subparsers.add_parser(name, help=help, description=help_text(description, examples),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
