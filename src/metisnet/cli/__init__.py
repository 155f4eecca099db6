"""The ``metis`` command line: a thin layer over the SDK and node services.

Each module of this package adds its commands to :data:`main` (from ``_group``); they are
all imported here, so a new command is a new module and no edit of this file.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import click

from metisnet.cli._group import main
from metisnet.errors import MetisError

__all__ = ["main", "run"]

for _mod in pkgutil.iter_modules(__path__):
    if not _mod.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_mod.name}")


def run() -> None:
    """Console-script entry: a MetisError becomes a one-line message and exit code 2."""
    try:
        main(standalone_mode=True)
    except MetisError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
