"""Exit codes of every ``exo`` command, defined once.

``EXIT_OK`` (0): done; ``EXIT_FAILED`` (1): ran, but the result is a failure (a check failed, a trial errored,
a run ended with errors); ``EXIT_USAGE`` (2): bad input, named with its field and value (also argparse's code).
"""
from __future__ import annotations

EXIT_OK: int = 0
EXIT_FAILED: int = 1
EXIT_USAGE: int = 2

#: One line for ``exo --help``.
EXIT_CODES_TEXT = f"exit codes: {EXIT_OK} done, {EXIT_FAILED} failed (checks, trials or the run), {EXIT_USAGE} bad input"
