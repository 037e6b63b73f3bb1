"""Every ``exo`` subcommand, each in its own module.

Every module here defines ``register(subparsers) -> None`` (parsers made with
:func:`runtime.cli.arguments.add_command`, so their examples print one per line and run as given);
:func:`runtime.cli.main.build_parser` finds them with :mod:`pkgutil`, so adding a command never edits
``main.py``. Keep module-level imports to argparse, the standard library and ``runtime.cli``'s light
helpers: heavy imports go inside the command function, so ``exo --help`` stays fast.
"""
