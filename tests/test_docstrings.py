"""Every docstring example of the package runs, so none of them is made up.

The examples share one namespace, as a user's session would: the real pretrained MiniLM
(``model``, ``tokenizer``, ``minilm_path``), a scratch folder ``tmp``, and the results the class
docstrings build (``exp``, ``sweep``, ``result``, ``series``) for the method docstrings to use.
"""

from __future__ import annotations

import copy
import doctest
import importlib
import pkgutil
import warnings

import numpy as np
import pytest
import torch

import probe

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
FAST = dict(samples=4, max_steps=2)
RESULTS = ("exp", "sweep", "result", "series", "interpreter")


def _modules() -> list:
    names = ["probe", "probe.adapters"] + [m.name for m in pkgutil.walk_packages(probe.__path__, "probe.")]
    names += [m.name for m in pkgutil.walk_packages(probe.adapters.__path__, "probe.adapters.")]
    return [importlib.import_module(n) for n in sorted(names) if not n.endswith("__main__")]


def _examples() -> list[doctest.DocTest]:
    finder = doctest.DocTestFinder(exclude_empty=True)
    found = {}
    for module in _modules():
        for test in finder.find(module):
            if test.examples and test.name.startswith(module.__name__):
                found.setdefault(test.name, test)
    return sorted(found.values(), key=lambda t: t.name)


EXAMPLES = _examples()


@pytest.fixture(scope="module")
def namespace(minilm, tmp_path_factory) -> dict:
    """What a user has at hand when reading the examples."""
    tmp = tmp_path_factory.mktemp("doc")
    model, tokenizer = minilm.model, minilm.tokenizer
    torch.manual_seed(0)
    exp = probe.explain(lambda x: x.sum(0), torch.randn(3, 8), words=["a", "b", "c"], **FAST)
    sentence = tokenizer("a fine film", return_tensors="pt")
    with probe.attach(model, ["encoder.layer.0", "encoder.layer.5"]) as p:
        sweep = p.explain(sentence, **FAST)
    result = probe.corpus(model, ["encoder.layer.0", "encoder.layer.5"], ["a fine film", "a dull film"], tokenizer=tokenizer, **FAST)
    inputs = tokenizer(["a fine film", "a dull plot"], padding=True, return_tensors="pt")
    layers = ["encoder.layer.0", "encoder.layer.1"]
    series = probe.TimeSeries.like(probe.snapshot_batch(model, inputs, layers, scale=1.0, **FAST))
    for step in (0, 20):
        series.append(step, probe.snapshot_batch(model, inputs, layers, scale=1.0, **FAST))
    toy = _seed_tutorial()
    return dict(
        probe=probe, torch=torch, np=np, warnings=warnings, model=model, tokenizer=tokenizer, minilm_path=minilm.path,
        tmp=tmp, exp=exp, sweep=sweep, result=result, series=series, inputs=inputs, layers=layers, **toy,
    )


def _seed_tutorial() -> dict:
    """The paper's tutorial: a linear Phi over 5 tokens of 256 features, its regularization, an Interpreter."""
    torch.manual_seed(0)
    W = torch.tensor([10.0, 20.0, 5.0, -20.0, -10.0])

    def Phi(x):
        return W @ x

    x, words = torch.randn(5, 256) / 100, ["1", "2", "3", "4", "5"]
    regularization = probe.calculate_regularization([torch.randn(5, 256) / 100 for _ in range(100)], Phi)
    interpreter = probe.Interpreter(x=x, Phi=Phi, regularization=regularization, scale=1.0, words=words)
    interpreter.optimize(iteration=500, lr=0.5)
    return dict(W=W, Phi=Phi, x=x, words=words, regularization=regularization, interpreter=interpreter)


@pytest.mark.parametrize("test", EXAMPLES, ids=[t.name for t in EXAMPLES])
def test_docstring_example_runs(test: doctest.DocTest, namespace: dict):
    fresh = {k: copy.deepcopy(v) if k in RESULTS else v for k, v in namespace.items()}  # an example may change them
    test = doctest.DocTest(test.examples, {**test.globs, **fresh}, test.name, test.filename, test.lineno, test.docstring)
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    report: list[str] = []
    registries = [probe.adapters._REGISTRY, probe._results.load._READERS]  # examples may register their own
    saved = [dict(r) for r in registries]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            runner.run(test, out=report.append)
    finally:
        for registry, before in zip(registries, saved):
            registry.clear()
            registry.update(before)
    assert runner.failures == 0, "".join(report)
