"""The ``nas`` command line: ``parser`` (one small function per command), ``commands`` (the
command bodies: they call the library and print), ``main`` (exit codes and one-line errors)."""

from nas.cli.main import main

__all__ = ["main"]
