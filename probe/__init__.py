"""probe: how much of each input word a layer of an NLP model still holds.

The information-based explanation of Guan et al. (ICML 2019): per-word Gaussian noise scales
``sigma`` that leave a hidden state unchanged; a small sigma means the layer keeps that word.

>>> import probe
>>> with probe.attach(model, "encoder.layer.2") as p:
...     exp = p.explain(tokenizer("a fine film", return_tensors="pt"))
>>> print(exp.table())
"""

__version__ = "0.1.0"

from ._functional import explain
from ._results import Explanation, Sweep, load
from ._seed_api import Interpreter, calculate_regularization
from ._solver import SolverSettings
from .errors import ProbeError
from ._attach import attach
from ._corpus import CorpusResult, corpus
from ._load_model import LoadedModel, load_model
from ._sweep import sweep
from ._timeseries import TimeSeries
from . import adapters

__all__ = [
    "Explanation",
    "adapters",
    "attach",
    "corpus",
    "CorpusResult",
    "Interpreter",
    "ProbeError",
    "SolverSettings",
    "Sweep",
    "TimeSeries",
    "calculate_regularization",
    "explain",
    "load",
    "load_model",
    "LoadedModel",
    "sweep",
]
