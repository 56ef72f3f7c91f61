"""Bad inputs and faults: each is a probe.ProbeError that says what to fix, raised before any work
is wasted where it can be, and the model is left exactly as found. Files are written atomically and
checked on load against their metadata."""

from __future__ import annotations

import errno
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

import probe
from _tiny import tiny_bert
from probe import Explanation, Sweep
from probe.errors import FileAccessError, FileFormatError, InputError, ModelError, RegularizationError

from test_attach_hygiene import snapshot

FAST = dict(samples=4, max_steps=3)
LAYERS = ["encoder.layer.0", "encoder.layer.1"]




@pytest.fixture
def bert():
    """A tiny randomly initialised BERT (32 wide, 64 positions) that counts its forward passes."""
    model = tiny_bert()
    model.calls = 0

    def count(module, args):
        module.calls += 1

    model.embeddings.register_forward_pre_hook(lambda module, args: count(model, args))
    return model


class Toy(nn.Module):
    """Embedding, a linear block and a head."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(20, 8, padding_idx=0)
        self.block = nn.Linear(8, 8)
        self.head = nn.Linear(8, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.block(self.embedding(ids)))


class Exp20(nn.Module):
    """exp(20 h): finite for the clean input, inf once noise pushes h past 4.4."""

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.exp(20 * h)


class Overflowing(Toy):
    def __init__(self) -> None:
        super().__init__()
        self.exp = Exp20()

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.exp(self.block(self.embedding(ids))))


def toy(cls=Toy) -> nn.Module:
    torch.manual_seed(0)
    return cls()


IDS = torch.tensor([[3, 7, 1, 12, 5]])


def assert_as_found(model: nn.Module, before: dict) -> None:
    """test_attach_hygiene's check, for weights that hold NaN or live on 'meta' as well."""
    after = snapshot(model)
    for key in ("hooks", "training", "requires_grad", "grads", "grad_enabled"):
        assert after[key] == before[key], key
    for name, value in before["values"].items():
        if not value.is_meta:
            torch.testing.assert_close(after["values"][name], value, rtol=0, atol=0, equal_nan=True)
    assert torch.equal(after["rng"], before["rng"]), "explain drew from torch's global RNG"


def refuses(model: nn.Module, layers, call, error: type, match: str, **attach_kwargs) -> None:
    """``call(p)`` inside ``probe.attach`` raises ``error`` matching ``match``; the model is as found."""
    before = snapshot(model)
    with probe.attach(model, layers, **attach_kwargs) as p:
        with pytest.raises(error, match=match) as raised:
            call(p)
    assert isinstance(raised.value, probe.ProbeError)
    assert_as_found(model, before)


# --- bad inputs ------------------------------------------------------------------------------


def test_empty_text_is_refused(bert, tokenizer):
    """An empty string tokenizes to [CLS] [SEP]: nothing to explain."""
    refuses(bert, "encoder.layer.1", lambda p: p.explain(tokenizer("", return_tensors="pt"), **FAST), InputError, r"only special tokens.*text is empty", tokenizer=tokenizer)
    padded = tokenizer(["a fine film", ""], return_tensors="pt", padding=True)
    refuses(bert, "encoder.layer.1", lambda p: p.explain_batch(padded, **FAST), InputError, r"sentence\(s\) \[1\] hold only special tokens", tokenizer=tokenizer)


def test_a_sentence_of_unknown_words_is_not_empty(bert, tokenizer):
    """Emoji and runes become [UNK]: a word the model reads, not a special token like [CLS]."""
    inputs = tokenizer("😀 ᚠᚢᚦ", return_tensors="pt")
    with probe.attach(bert, "encoder.layer.1", tokenizer=tokenizer) as p:
        exp = p.explain(inputs, **FAST)
    assert exp.words == ["[CLS]", "[UNK]", "[UNK]", "[SEP]"] and exp.sigma.shape == (4,)
    assert bool((exp.sigma > 0).all())


def test_zero_tokens_are_refused_before_the_model_fails(bert, tokenizer):
    empty = tokenizer("", return_tensors="pt", add_special_tokens=False)
    assert empty["input_ids"].shape == (1, 0)
    refuses(bert, "encoder.layer.1", lambda p: p.explain(empty, **FAST), InputError, r"1 sentences of 0 tokens \(empty text\?\)")
    refuses(toy(), "block", lambda p: p.explain(torch.zeros(1, 0, dtype=torch.long), **FAST), InputError, r"0 tokens")


def test_one_token_is_a_sentence_of_one_word():
    """One token is explained like any sentence: the same sigma as the hand-written Phi of that token."""
    model, ids = toy(), torch.tensor([[5]])
    with probe.attach(model, "block") as p:
        exp = p.explain(ids, scale=1.0, seed=3, **FAST)
    with torch.no_grad():
        x = model.embedding(ids)[0]
    ref = probe.explain(model.block, x, scale=1.0, seed=3, batched_phi=True, **FAST)
    assert exp.sigma.shape == (1,) and exp.words == ["0"]
    assert 0 < float(exp.sigma[0]) < 1.0
    assert torch.allclose(exp.sigma, ref.sigma, rtol=1e-5)


def test_input_longer_than_the_position_limit_is_refused_before_running(bert, tokenizer):
    long = tokenizer(" ".join(["film"] * 70), return_tensors="pt")
    refuses(bert, "encoder.layer.1", lambda p: p.explain(long, **FAST), InputError, r"72 tokens but the model takes at most 64 \(its max_position_embeddings\).*truncation=True, max_length=64")
    refuses(bert, "encoder.layer.1", lambda p: p.regularization([long]), InputError, r"at most 64")
    assert bert.calls == 0
    exactly = tokenizer(" ".join(["film"] * 62), return_tensors="pt")
    with probe.attach(bert, "encoder.layer.1") as p:
        assert len(p.explain(exactly, max_steps=0).sigma) == 64


def test_roberta_positions_start_after_the_padding_index():
    from transformers import RobertaConfig, RobertaModel

    config = RobertaConfig(vocab_size=100, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8, max_position_embeddings=20, pad_token_id=1)
    model = RobertaModel(config).eval()
    assert probe.attach(model, "encoder.layer.0").adapter.max_tokens() == 18
    refuses(model, "encoder.layer.0", lambda p: p.explain({"input_ids": torch.full((1, 19), 5)}, **FAST), InputError, r"19 tokens but the model takes at most 18")


def test_mask_that_does_not_match_the_ids_is_refused_before_running(bert, tokenizer):
    enc = tokenizer("a fine film", return_tensors="pt")
    for mask in (enc["attention_mask"][:, :3], torch.ones(1, 9, dtype=torch.long), enc["attention_mask"][0]):
        bad = {**enc, "attention_mask": mask}
        refuses(bert, "encoder.layer.1", lambda p: p.explain(bad, **FAST), InputError, re.escape(f"attention_mask has shape {tuple(mask.shape)} but input_ids has shape (1, 5)"))
    assert bert.calls == 0


def test_ids_that_are_not_a_tensor_say_return_tensors(bert, tokenizer):
    refuses(bert, "encoder.layer.1", lambda p: p.explain(tokenizer("a fine film"), **FAST), InputError, r"input_ids is a list.*return_tensors='pt'")


def test_regularization_of_the_wrong_shape_names_the_expected_one(bert, tokenizer):
    enc = tokenizer("a fine film", return_tensors="pt")
    refuses(bert, "encoder.layer.1", lambda p: p.explain(enc, regularization=torch.ones(7), **FAST), RegularizationError, r"shape \(7,\).*e\.g\. shape \(32,\)")
    regs = {"encoder.layer.0": torch.ones(32), "encoder.layer.1": torch.ones(3, 32)}
    refuses(bert, LAYERS, lambda p: p.explain(enc, regularization=regs, **FAST), RegularizationError, r"regularization of 'encoder.layer.1' has shape \(3, 32\).*\(32,\)")
    assert bert.calls == 2  # the clean pass of each call, no solve


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0])
def test_regularization_with_nan_inf_or_negative_values(bert, tokenizer, bad):
    reg = torch.ones(32)
    reg[5] = bad
    enc = tokenizer("a fine film", return_tensors="pt")
    refuses(bert, "encoder.layer.1", lambda p: p.explain(enc, regularization=reg, **FAST), RegularizationError, "NaN or inf" if bad != -1.0 else "negative")
    refuses(toy(), "block", lambda p: p.explain(IDS, regularization=reg[:8], **FAST), RegularizationError, "NaN or inf" if bad != -1.0 else "negative")


def test_words_of_the_wrong_length_are_refused_before_the_solve(bert, tokenizer):
    enc = tokenizer("a fine film", return_tensors="pt")
    refuses(bert, "encoder.layer.1", lambda p: p.explain(enc, words=["a", "fine"], **FAST), InputError, r"5 real tokens but words gives 2 words")
    refuses(bert, "encoder.layer.1", lambda p: p.explain(enc, words="a fine film", **FAST), InputError, r"words gives a string")
    batch = tokenizer(["a fine film", "dull"], return_tensors="pt", padding=True)
    refuses(bert, "encoder.layer.1", lambda p: p.explain_batch(batch, words=[["a"] * 5], **FAST), InputError, r"2 sentences but words is not a list of 2 word lists")
    refuses(bert, "encoder.layer.1", lambda p: p.explain_batch(batch, words=[["a"] * 5, ["b"] * 5], **FAST), InputError, r"sentence 1 has 3 real tokens but words gives 5")
    refuses(bert, "encoder.layer.1", lambda p: p.explain(batch, **FAST), InputError, r"2 sentences; explain takes one: use p.explain_batch")
    assert bert.calls == 5  # one clean pass each: the solver never ran


def test_nan_in_the_clean_hidden_state_names_the_layer():
    model = toy()
    with torch.no_grad():
        model.block.weight[2, 3] = float("nan")
    refuses(model, "block", lambda p: p.explain(IDS, **FAST), ModelError, r"layer 'block' holds NaN or inf for these inputs, before any noise")


def test_nan_in_the_embeddings_is_named():
    model = toy()
    with torch.no_grad():
        model.embedding.weight[7] = float("inf")
    refuses(model, "block", lambda p: p.explain(IDS, scale=1.0, **FAST), ModelError, r"embedding module's output holds NaN or inf")
    refuses(model, "block", lambda p: p.explain(IDS, **FAST), ModelError, r"word-embedding weights hold NaN or inf.*pass scale=")


def test_inf_under_noise_names_the_layer_and_the_fix():
    """exp(20 h) is finite on the clean input; the noise of scale 10 overflows it."""
    model = toy(Overflowing)
    loose = torch.tensor(1e6)  # a weighting that leaves every word near the ceiling, where the noise overflows
    refuses(model, "exp", lambda p: p.explain(IDS, scale=10.0, regularization=loose, **FAST), ModelError, r"layer 'exp' gives NaN or inf once noise is added.*smaller scale=")
    with probe.attach(model, "exp") as p:
        assert torch.isfinite(p.explain(IDS, scale=1e-3, **FAST).sigma).all()


def test_probe_explain_refuses_nan_under_noise_and_a_wrong_batched_shape():
    x = torch.randn(3, 4) / 100
    with pytest.raises(ModelError, match=r"Phi gives NaN or inf once noise is added to x.*smaller scale="):
        probe.explain(lambda v: torch.exp(1000 * v), x, scale=10.0, **FAST)
    with pytest.raises(ModelError, match=r"Phi gave \(3, 4\) for a batch of .* noisy copies, expected .*batched_phi=True"):
        probe.explain(lambda v: v.sum(0), x, batched_phi=True, **FAST)


def test_inputs_on_the_meta_device_cannot_be_moved(bert, tokenizer):
    enc = {k: v.to("meta") for k, v in tokenizer("a fine film", return_tensors="pt").items()}
    refuses(bert, "encoder.layer.1", lambda p: p.explain(enc, **FAST), InputError, r"cannot move the inputs to the model's device cpu.*not on the 'meta' device")


def test_a_model_whose_weights_were_never_loaded(tokenizer):
    from transformers import BertConfig, BertModel

    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    with torch.device("meta"):
        model = BertModel(config)
    enc = tokenizer("a fine film", return_tensors="pt")
    refuses(model, "encoder.layer.0", lambda p: p.explain(enc, **FAST), InputError, r"weights are on the 'meta' device.*load them")
    refuses(model, "encoder.layer.0", lambda p: p.explain(enc, scale=1.0, **FAST), InputError, r"'meta' device")
    refuses(model, "encoder.layer.0", lambda p: p.regularization([enc]), InputError, r"'meta' device")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_inputs_on_the_cpu_are_moved_to_the_models_gpu():
    model = toy().cuda()
    seen = []
    model.block.register_forward_pre_hook(lambda module, args: seen.append(args[0].device))
    with probe.attach(model, "block") as p:
        exp = p.explain(IDS, scale=1.0, **FAST)
    assert {d.type for d in seen} == {"cuda"} and torch.isfinite(exp.sigma).all()


# --- two attach blocks on one model ------------------------------------------------------------


def test_two_attach_blocks_on_one_model_give_the_results_of_one(bert, tokenizer):
    enc = tokenizer("a fine film", return_tensors="pt")
    with probe.attach(bert, "encoder.layer.1") as p:
        alone = p.explain(enc, scale=1.0, **FAST)
    with probe.attach(bert, LAYERS) as p:
        sweep_alone = p.explain(enc, scale=1.0, **FAST)
    before = snapshot(bert)
    with probe.attach(bert, "encoder.layer.1") as one, probe.attach(bert, LAYERS) as both:
        first = one.explain(enc, scale=1.0, **FAST)
        sweep = both.explain(enc, scale=1.0, **FAST)
        again = one.explain(enc, scale=1.0, **FAST)
    assert_as_found(bert, before)
    assert torch.equal(first.sigma, alone.sigma) and torch.equal(again.sigma, alone.sigma)
    assert torch.equal(sweep.sigma, sweep_alone.sigma)


def test_an_explain_inside_another_running_one_is_refused():
    """select runs inside the outer solve: an inner explain there would see the outer noise."""
    model = toy()
    with probe.attach(model, "block") as p:
        alone = p.explain(IDS, scale=1.0, **FAST)
    refused = []

    def select(h: torch.Tensor) -> torch.Tensor:
        if not refused:
            with pytest.raises(InputError, match=r"another probe.attach is explaining this model right now.*copy.deepcopy") as err:
                inner.explain(IDS, scale=1.0, **FAST)
            refused.append(err.value)
        return h

    before = snapshot(model)
    with probe.attach(model, "block", select=select) as outer, probe.attach(model, "block") as inner:
        result = outer.explain(IDS, scale=1.0, **FAST)
        after = inner.explain(IDS, scale=1.0, **FAST)
    assert refused and torch.equal(result.sigma, alone.sigma) and torch.equal(after.sigma, alone.sigma)
    assert_as_found(model, before)


def test_a_second_thread_on_the_same_model_is_refused_and_copies_work():
    model = toy()
    with probe.attach(model, "block") as p:
        alone = p.explain(IDS, scale=1.0, **FAST)
    running, tried = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def hold(h: torch.Tensor) -> torch.Tensor:
        """The first thread's select: waits inside its explain until the second thread has tried."""
        running.set()
        tried.wait(10)
        return h

    def first() -> None:
        with probe.attach(model, "block", select=hold) as p:
            errors.append(p.explain(IDS, scale=1.0, max_steps=0))

    def second() -> None:
        running.wait(10)
        try:
            with probe.attach(model, "block") as p:
                p.explain(IDS, scale=1.0, max_steps=0)
        except probe.ProbeError as err:
            errors.append(err)
        finally:
            tried.set()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert isinstance(errors[0], InputError) and "another probe.attach" in str(errors[0])
    assert isinstance(errors[1], Explanation)

    import copy

    results: dict[int, Explanation] = {}

    def own_copy(i: int) -> None:
        with probe.attach(copy.deepcopy(model), "block") as p:
            results[i] = p.explain(IDS, scale=1.0, **FAST)

    threads = [threading.Thread(target=own_copy, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert all(torch.equal(r.sigma, alone.sigma) for r in results.values()) and len(results) == 2


# --- interrupts --------------------------------------------------------------------------------


def test_keyboard_interrupt_mid_sweep_leaves_bert_clean_and_the_block_usable(bert, tokenizer):
    enc = tokenizer("a fine film", return_tensors="pt")
    bert.train()
    bert.pooler.dense.weight.requires_grad_(False)
    before = snapshot(bert)
    calls = 0

    def interrupt(module, args, output):
        nonlocal calls
        calls += 1
        if calls == 8:  # after the clean pass and the linearised start, inside the refinement
            raise KeyboardInterrupt

    with probe.attach(bert, LAYERS) as p:
        hook = bert.encoder.layer[0].attention.register_forward_hook(interrupt)  # before attach's own hook can stop the pass
        with pytest.raises(KeyboardInterrupt):
            p.explain(enc, scale=1.0, **FAST)
        hook.remove()
        after = p.explain(enc, scale=1.0, **FAST)
    assert_as_found(bert, before)
    with probe.attach(bert, LAYERS) as p:
        assert torch.equal(p.explain(enc, scale=1.0, **FAST).sigma, after.sigma)


# --- files -------------------------------------------------------------------------------------


def explanation(shift: float = 0.0) -> Explanation:
    return Explanation(sigma=torch.tensor([0.1, 0.2, 0.3]) + shift, words=["a", "b", "c"], scale=0.5, rate=0.1, width=8, layer="l", regularization=torch.ones(4), curve=[1.0, 0.5], steps=2)


class _FullDisk:
    """A file whose write stores half the bytes, then fails as a full disk does."""

    def __init__(self, f) -> None:
        self.f = f

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.f.close()

    def write(self, data: bytes) -> int:
        self.f.write(data[: len(data) // 2])
        self.f.flush()
        raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name: str):
        return getattr(self.f, name)


@pytest.mark.parametrize("result", [explanation(0.01), Sweep({"x": explanation(0.01), "y": explanation(0.02)})], ids=["explanation", "sweep"])
def test_a_full_disk_mid_write_leaves_the_old_file(tmp_path, monkeypatch, result):
    import probe._utils.files

    path = tmp_path / "exp.safetensors"
    explanation().save(path)
    old = path.read_bytes()
    real = os.fdopen
    monkeypatch.setattr(probe._utils.files.os, "fdopen", lambda fd, mode: _FullDisk(real(fd, mode)))
    with pytest.raises(FileAccessError, match=r"could not write '.*exp.safetensors': No space left on device; check the free space") as err:
        result.save(path)
    assert err.value.errno == errno.ENOSPC and isinstance(err.value, OSError)
    assert os.listdir(tmp_path) == ["exp.safetensors"] and path.read_bytes() == old


def test_an_interrupt_mid_write_leaves_the_old_file(tmp_path, monkeypatch):
    import probe._utils.files

    path = tmp_path / "exp.safetensors"
    explanation().save(path)
    old = path.read_bytes()

    def interrupted(fd: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(probe._utils.files.os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        explanation(0.01).save(path)
    assert os.listdir(tmp_path) == ["exp.safetensors"] and path.read_bytes() == old


def test_a_process_killed_mid_write_leaves_the_old_file(tmp_path):
    """SIGKILL between writing the bytes and the rename: the final name still holds the old file."""
    path = tmp_path / "exp.safetensors"
    explanation().save(path)
    old = path.read_bytes()
    script = (
        "import os, signal, torch, probe, probe._utils.files\n"
        "probe._utils.files.os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)\n"
        f"probe.Explanation(sigma=torch.ones(3), words=list('abc'), scale=1.0, rate=0.1, width=8).save({str(path)!r})\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert done.returncode == -9, done.stderr.decode()
    assert path.read_bytes() == old
    leftovers = [name for name in os.listdir(tmp_path) if name != "exp.safetensors"]
    assert all(name.startswith(".probe-") and name.endswith(".tmp") for name in leftovers)
    assert isinstance(probe.load(path), Explanation)


def test_a_sweep_whose_layers_share_one_regularization_saves(tmp_path):
    """safetensors refuses tensors sharing memory; one regularization object for two layers is normal."""
    shared = explanation()
    Sweep({"a": shared, "b": shared}).save(tmp_path / "s.safetensors")
    loaded = probe.load(tmp_path / "s.safetensors")
    assert torch.equal(loaded["b"].regularization, shared.regularization)


def test_a_layer_name_no_file_can_store_is_refused_and_writes_nothing(tmp_path):
    exp = explanation()
    exp.layer = "bad\udc00"
    with pytest.raises(InputError, match=r"lone surrogate"):
        exp.save(tmp_path / "e.safetensors")
    assert os.listdir(tmp_path) == []


def _rewrite(path: Path, tensors: dict | None = None, **meta: str) -> None:
    """Rewrites a probe file with some tensors and metadata replaced."""
    with safe_open(str(path), "pt") as f:
        old_meta = f.metadata()
    save_file({**load_file(path), **(tensors or {})}, str(path), metadata={**old_meta, **meta})


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(format_version="2"), r"written in probe format 2 by a newer probe .*this probe reads format 1: upgrade"),
        (dict(format_version="0"), r"damaged format_version 0"),
        (dict(format_version="one"), r"damaged format_version"),
        (dict(tensors={"information_loss": torch.zeros(4)}), r"'information_loss' has shape \(4,\) but sigma has \(3,\)"),
        (dict(tensors={"sigma": torch.ones(3, dtype=torch.int64)}), r"'sigma' is a torch.int64 tensor of shape \(3,\), expected a float tensor"),
        (dict(tensors={"loss_curve": torch.zeros(2, 2)}), r"'loss_curve' has shape \(2, 2\).*not a float curve"),
        (dict(tensors={"regularization": torch.ones(4, dtype=torch.int32)}), r"'regularization' holds torch.int32, not floats"),
        (dict(words=json.dumps(["a", "b"])), r"'words' does not match the 3 tokens of sigma"),
        (dict(settings="[1, 2]"), r"'settings' is damaged"),
    ],
)
def test_load_checks_the_version_and_the_tensors_against_the_metadata(tmp_path, change, message):
    path = tmp_path / "exp.safetensors"
    explanation().save(path)
    _rewrite(path, **change)
    with pytest.raises(FileFormatError, match=message):
        probe.load(path)


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(tensors={"sigma": torch.ones(3, 3), "information_loss": torch.ones(3, 3)}), r"sigma has 3 layers but the metadata names 2"),
        (dict(tensors={"information_loss": torch.ones(2, 4)}), r"'information_loss' has shape \(2, 4\) but sigma has \(2, 3\)"),
        (dict(layers=json.dumps([{**explanation()._metadata(), "name": "x"}] * 2)), r"names a layer twice"),
        (dict(layers=json.dumps([{**explanation()._metadata(), "name": "x"}, {**explanation()._metadata(), "name": "y", "words": '["a", "b", "d"]'}])), r"disagree on the words"),
        (dict(layers="{}"), r"'layers' is damaged"),
    ],
)
def test_load_checks_a_sweep_against_its_metadata(tmp_path, change, message):
    path = tmp_path / "sweep.safetensors"
    Sweep({"x": explanation(), "y": explanation(0.1)}).save(path)
    _rewrite(path, **change)
    with pytest.raises(FileFormatError, match=message):
        probe.load(path)


def test_a_plain_forward_in_another_thread_is_refused_while_explain_runs():
    """probe holds the model in eval mode while it explains: another thread's forward pass of the
    same model is refused with a clear error (issue 18), never run in the wrong mode, nor given the
    noisy copies or probe's private stop; the explanation itself is unaffected."""
    model = toy()
    with torch.no_grad():
        clean = model(IDS)
    inside, done = threading.Event(), threading.Event()
    seen: list = []

    def hold(h: torch.Tensor) -> torch.Tensor:
        """The explaining thread's select: lets the other thread run the model meanwhile."""
        inside.set()
        done.wait(10)
        return h

    def other() -> None:
        inside.wait(10)
        try:
            with torch.no_grad():
                seen.append(model(IDS))
        except BaseException as err:  # noqa: BLE001 - whatever escapes is the failure
            seen.append(err)
        finally:
            done.set()

    thread = threading.Thread(target=other)
    thread.start()
    with probe.attach(model, "block", select=hold) as p:
        result = p.explain(IDS, scale=1.0, max_steps=0)
    thread.join(20)
    assert len(seen) == 1 and isinstance(seen[0], probe.ProbeError) and "another thread" in str(seen[0]), seen
    assert result.sigma.shape == (IDS.shape[1],)
    with torch.no_grad():
        assert torch.equal(model(IDS), clean)
