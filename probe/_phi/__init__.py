"""Explaining a Phi you write: probe.explain and the paper's Interpreter API. Imports the parts below it."""
