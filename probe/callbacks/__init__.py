"""Integrations with training loops: records of how layers keep words as a model trains.

>>> from probe.callbacks import SnapshotCallback
"""

from ._trainer import SnapshotCallback

__all__ = ["SnapshotCallback"]
