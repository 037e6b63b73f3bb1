"""Subcommands of ``exo`` that live in their own module.

Every module here defines ``register(subparsers) -> None``; :func:`runtime.cli.main.build_parser`
finds them with :mod:`pkgutil`, so adding a command never edits ``cli.py``. Keep module-level
imports to argparse and the standard library: heavy imports go inside the command function.
"""
