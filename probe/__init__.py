"""probe: how much of each input word a layer of an NLP model still holds.

The information-based explanation of Guan et al. (ICML 2019): per-word Gaussian noise scales
``sigma`` that leave a hidden state unchanged; a small sigma means the layer keeps that word.

>>> import probe
>>> with probe.attach(model, "encoder.layer.2") as p:
...     exp = p.explain(tokenizer("a fine film", return_tensors="pt"), samples=4, max_steps=2)
>>> exp.words
['[CLS]', 'a', 'fine', 'film', '[SEP]']
"""

__version__ = "0.2.0"

from . import adapters
from ._running.attach import attach
from ._results.corpus import CorpusResult
from ._running.corpus_run import corpus
from ._phi.explain import explain
from ._results.load import load
from ._running.load_model import LoadedModel, load_model
from ._results.explanation import Explanation
from ._phi.interpreter import Interpreter, calculate_regularization
from ._running.snapshot import snapshot, snapshot_batch
from ._method.settings import SolverSettings
from ._results.sweep import Sweep
from ._results.timeseries import TimeSeries
from .errors import ProbeError

__all__ = [
    "CorpusResult",
    "Explanation",
    "Interpreter",
    "LoadedModel",
    "ProbeError",
    "SolverSettings",
    "Sweep",
    "TimeSeries",
    "adapters",
    "attach",
    "calculate_regularization",
    "corpus",
    "explain",
    "load",
    "load_model",
    "snapshot",
    "snapshot_batch",
]
