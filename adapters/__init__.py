"""Per-architecture adapters, installed as ``probe.adapters``."""
