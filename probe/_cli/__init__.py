"""The command line (``probe ...``): parsing and early checks, the commands, and the entry point.
Imports every part below it."""

from .cli import main

__all__ = ["main"]
