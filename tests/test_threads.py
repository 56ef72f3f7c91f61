"""Other threads see nothing of probe (issue 18): their random draws never repeat, and their forward
passes of the same model never run in probe's eval mode (they are refused while probe holds it)."""

from __future__ import annotations

import random
import threading

import numpy as np
import pytest
import torch

import probe

from _fuzz import held
from _tiny import tiny_bert_folder

LAYER = "encoder.layer.0"
QUICK = dict(samples=4, max_steps=3)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return probe.load_model(tiny_bert_folder(tmp_path_factory.mktemp("threads-bert")))


def explain_while(model, tokenizer, other, stop: threading.Event, rounds: int = 8) -> None:
    """Explains in a loop while ``other`` runs in another thread until ``stop`` is set."""
    inputs = tokenizer("a fine film about a rare bird", return_tensors="pt")
    thread = threading.Thread(target=other)
    thread.start()
    try:
        with probe.attach(model, LAYER, tokenizer=tokenizer) as p:
            for _ in range(rounds):
                p.explain(inputs, **QUICK)
    finally:
        stop.set()
        thread.join()


def test_another_threads_random_draws_never_repeat(tiny):
    model, tokenizer = tiny
    draws: dict[str, list] = {"torch": [], "random": [], "numpy": []}
    stop = threading.Event()

    def drawer():
        while not stop.is_set():
            draws["torch"].append(int(torch.randint(2**62, (1,))))  # 62 bits: a repeat by chance is out of reach
            draws["random"].append(random.getrandbits(62))
            draws["numpy"].append(int(np.random.randint(2**62, dtype=np.int64)))

    def check():
        explain_while(model, tokenizer, drawer, stop)
        for name, values in draws.items():
            assert len(values) > 10 and len(set(values)) == len(values), f"{name}: {len(values)} draws, {len(set(values))} distinct"

    held("another thread's draws while probe explains", check)


def test_another_threads_training_passes_stay_in_training_mode(tiny):
    model, tokenizer = tiny
    dropouts = [m for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    seen = threading.local()
    handles = [m.register_forward_hook(lambda m, args, out: getattr(seen, "modes", []).append(m.training)) for m in dropouts]
    inputs = tokenizer("training text for the other thread", return_tensors="pt")
    passes = {"train": 0, "eval": 0, "refused": 0}
    refusals: list[str] = []
    stop = threading.Event()

    def trainer():
        while not stop.is_set():
            seen.modes = []
            try:
                model(**inputs)
            except probe.ProbeError as err:
                passes["refused"] += 1
                refusals.append(str(err))
                continue
            passes["train" if all(seen.modes) else "eval"] += 1

    def check():
        model.train()
        explain_while(model, tokenizer, trainer, stop)
        assert model.training and all(m.training for m in model.modules()), "probe did not restore training mode"
        assert passes["eval"] == 0, f"{passes['eval']} of the other thread's passes ran in eval mode ({passes})"
        assert passes["train"] + passes["refused"] > 0
        assert all("another thread" in r for r in refusals), refusals[:1]

    try:
        held("another thread's training passes", check)
    finally:
        model.eval()
        for handle in handles:
            handle.remove()
