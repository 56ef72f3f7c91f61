"""Checks, warnings and atomic files shared by every part: imports only probe.errors."""
