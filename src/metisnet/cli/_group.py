"""The root ``metis`` command group; subcommand modules attach to it."""

from __future__ import annotations

import click

from metisnet import __version__

__all__ = ["main"]


@click.group()
@click.version_option(__version__, prog_name="metis")
def main() -> None:
    """metisnet: compute jointly on private data that nobody shows anyone."""
