"""Integrations with training loops: records of how layers keep words as a model trains.

``SnapshotCallback`` for the HF Trainer; ``LightningSnapshotCallback`` for Lightning (optional extra
``lightning``, imported only when asked for). Both share ``_recorder`` (one record, resuming a
series) and ``_tensorboard`` (a record as TensorBoard images and scalars). Imports only from the
parts below: results, running, method, utils, errors.

>>> from probe.callbacks import SnapshotCallback
"""

from ._trainer import SnapshotCallback

__all__ = ["SnapshotCallback", "LightningSnapshotCallback"]


def __getattr__(name: str):
    if name == "LightningSnapshotCallback":
        try:
            from ._lightning import LightningSnapshotCallback
        except ModuleNotFoundError as missing:
            from ..errors import ProbeError

            raise ProbeError(f"LightningSnapshotCallback needs Lightning ({missing}); pip install 'sigma-probe[lightning]'") from None
        return LightningSnapshotCallback
    raise AttributeError(f"module 'probe.callbacks' has no attribute {name!r}")
