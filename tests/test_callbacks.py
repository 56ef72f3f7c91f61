"""SnapshotCallback with a real HF Trainer, and the time series file it writes."""

from __future__ import annotations

import math
import sys
import warnings
from types import SimpleNamespace

import pytest
import torch

pytest.importorskip("accelerate", reason="transformers.Trainer needs accelerate (pip install 'accelerate>=1.1')")

from tokenizers import Tokenizer, models, pre_tokenizers, processors  # noqa: E402
from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast, Trainer, TrainerState, TrainingArguments  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

import probe  # noqa: E402
from probe.callbacks import SnapshotCallback  # noqa: E402

WORDS = "the a film plot was very great good awful dull".split()
PROBES = ["the film was great", "a very dull plot"]
LAYERS = ["bert.encoder.layer.0", "bert.encoder.layer.1"]
SOLVER = dict(samples=8, max_steps=8)


@pytest.fixture(autouse=True)
def quiet_single_thread():
    """A tiny model trains fastest on one thread; the same thread count for every run compared."""
    threads, verbosity = torch.get_num_threads(), hf_logging.get_verbosity()
    torch.set_num_threads(1)
    hf_logging.set_verbosity_error()
    yield
    torch.set_num_threads(threads)
    hf_logging.set_verbosity(verbosity)


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerFast:
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *WORDS])}
    core = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]")


class Sentences(torch.utils.data.Dataset):
    """24 generated sentences: label 1 when a positive word is in it."""

    def __init__(self, tokenizer) -> None:
        g = torch.Generator().manual_seed(0)
        texts = [" ".join(WORDS[int(i)] for i in torch.randint(0, len(WORDS), (5,), generator=g)) for _ in range(24)]
        self.encoded = tokenizer(texts, padding="max_length", max_length=8, return_tensors="pt")
        self.labels = torch.tensor([int("great" in t or "good" in t) for t in texts])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.encoded["input_ids"][i], "attention_mask": self.encoded["attention_mask"][i], "labels": self.labels[i]}


def tiny_bert(tokenizer) -> BertForSequenceClassification:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, max_position_embeddings=16, num_labels=2)
    return BertForSequenceClassification(config)


def train(tokenizer, tmp_path, callbacks=()) -> BertForSequenceClassification:
    """Two epochs of three steps (24 sentences, batch 8), dropout on, AdamW: seeded by the Trainer."""
    model = tiny_bert(tokenizer)
    args = TrainingArguments(
        output_dir=str(tmp_path / "trainer"), report_to=[], use_cpu=True, save_strategy="no", per_device_train_batch_size=8,
        num_train_epochs=2, learning_rate=5e-3, logging_strategy="no", disable_tqdm=True, seed=0,
    )
    Trainer(model=model, args=args, train_dataset=Sentences(tokenizer), processing_class=tokenizer, callbacks=list(callbacks)).train()
    return model


def test_trainer_with_callback_records_the_chosen_steps_and_trains_bit_identically(tokenizer, tmp_path):
    path = tmp_path / "timestamps.safetensors"
    callback = SnapshotCallback(PROBES, LAYERS, path, every_n_steps=4, on_epoch_end=True, scale=1.0, select=lambda h: h[:, 0], **SOLVER)
    swept = train(tokenizer, tmp_path, [callback])
    plain = train(tokenizer, tmp_path)

    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), swept.state_dict().values()))
    series = probe.load(path)
    assert isinstance(series, probe.TimeSeries)
    assert series.steps == [0, 3, 4, 6]  # start, epoch end, every 4, epoch end
    assert series.epochs[1:] == pytest.approx([1.0, 4 / 3, 2.0])
    assert series.layers == LAYERS and series.sentences == PROBES and series.scale == 1.0
    assert series.words == [tokenizer.convert_ids_to_tokens(tokenizer(s)["input_ids"]) for s in PROBES]
    for sigma, words in zip(series.sigma, series.words):
        assert sigma.shape == (4, 2, len(words))
        assert bool((sigma < 0.95).any(-1).all()), "at every record the [CLS] state keeps some token of the sentence (at least [CLS])"
        assert not torch.equal(sigma[0], sigma[-1]), "training changed the model, so what its layers keep changes"
    assert all(torch.equal(a, b) for a, b in zip(series.sigma, callback.series.sigma))

    # the last record is what probe.snapshot_batch says about the trained model
    inputs = tokenizer(PROBES, padding=True, return_tensors="pt")
    final = probe.snapshot_batch(swept, inputs, LAYERS, scale=1.0, select=lambda h: h[:, 0], tokenizer=tokenizer, **callback.solver)
    for i, sweep in enumerate(final):
        assert torch.equal(series.sigma[i][-1], sweep.sigma)
    assert torch.allclose(series.information_loss[0][-1], final[0].information_loss)

    png = tmp_path / "timestamps.png"
    callback.plot(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_corpus_regularization_and_resuming_a_recorded_series(tokenizer, tmp_path):
    path = tmp_path / "series.safetensors"
    model = tiny_bert(tokenizer)
    corpus = ["the film", "a dull plot was good", "great"]
    first = SnapshotCallback(PROBES[0], LAYERS[0], path, every_n_steps=2, on_epoch_end=True, corpus=corpus, tokenizer=tokenizer, **SOLVER)
    first.on_train_begin(None, TrainerState(), None, model=model)
    for step in (1, 2, 3, 4):
        first.on_step_end(None, TrainerState(global_step=step, epoch=step / 4), None, model=model)
    first.on_epoch_end(None, TrainerState(global_step=4, epoch=1.0), None, model=model)
    assert probe.load(path).steps == [0, 2, 4]
    with torch.no_grad():
        perturbed = model.bert.embeddings(tokenizer(corpus, padding=True, return_tensors="pt")["input_ids"])
    assert first.series.scale == pytest.approx(10 * float(perturbed.std()), rel=0.15), "10 x the std of the perturbed tensor"
    with probe.attach(model, LAYERS[0]) as p:
        regularization = p.regularization([tokenizer(corpus, padding=True, return_tensors="pt")])
    expected = probe.snapshot(model, tokenizer(PROBES[0], return_tensors="pt"), LAYERS[0], regularization=regularization, scale=first.series.scale, **first.solver)
    assert torch.equal(first.series.sigma[0][-1, 0], expected.sigma)

    resumed = SnapshotCallback(PROBES[0], LAYERS[0], path, every_n_steps=2, at_start=False, tokenizer=tokenizer)
    resumed.on_train_begin(None, TrainerState(global_step=2), None, model=model)
    assert resumed.series.steps == [0, 2] and resumed.series.scale == first.series.scale
    assert torch.equal(resumed.series.sigma[0], first.series.sigma[0][:2])

    fresh = SnapshotCallback(PROBES[0], LAYERS[0], path, every_n_steps=2, at_start=False, tokenizer=tokenizer)
    fresh.on_train_begin(None, TrainerState(global_step=0), None, model=model)
    assert fresh.series is None

    other = SnapshotCallback(PROBES[1], LAYERS[0], path, every_n_steps=2, tokenizer=tokenizer)
    with pytest.raises(probe.ProbeError, match="other results"):
        other.on_train_begin(None, TrainerState(global_step=2), None, model=model)


def test_callback_mistakes_are_probe_errors_that_say_the_fix(tokenizer, tmp_path):
    with pytest.raises(probe.ProbeError, match="every_n_steps=N, on_epoch_end=True"):
        SnapshotCallback(PROBES, LAYERS, tmp_path / "s.safetensors")
    with pytest.raises(probe.ProbeError, match="positive whole number"):
        SnapshotCallback(PROBES, LAYERS, tmp_path / "s.safetensors", every_n_steps=0)
    with pytest.raises(probe.ProbeError, match="unknown solver setting"):
        SnapshotCallback(PROBES, LAYERS, tmp_path / "s.safetensors", every_n_steps=5, sample=8)
    with pytest.raises(probe.ProbeError, match="non-empty strings"):
        SnapshotCallback([], LAYERS, tmp_path / "s.safetensors", every_n_steps=5)
    callback = SnapshotCallback(PROBES, LAYERS, tmp_path / "s.safetensors", every_n_steps=5)
    with pytest.raises(probe.ProbeError, match="tokenizer="):
        callback.on_train_begin(None, TrainerState(), None, model=tiny_bert(tokenizer))
    with pytest.raises(probe.ProbeError, match="recorded nothing yet"):
        callback.plot(tmp_path / "s.png")
    typo = SnapshotCallback(PROBES, ["bert.encoder.layer.O"], tmp_path / "s.safetensors", every_n_steps=5, at_start=False, tokenizer=tokenizer)
    with pytest.raises(probe.ProbeError, match="no submodule 'bert.encoder.layer.O'; did you mean"):
        typo.on_train_begin(None, TrainerState(), None, model=tiny_bert(tokenizer))


def test_time_series_checks_what_is_appended_and_round_trips(tokenizer, tmp_path):
    model = tiny_bert(tokenizer)
    inputs = tokenizer(PROBES[0], return_tensors="pt")
    (result,) = results = probe.snapshot_batch(model, inputs, LAYERS, scale=1.0, **SOLVER)
    series = probe.TimeSeries.like(results)
    series.append(10, results)
    with pytest.raises(probe.ProbeError, match="not after the last recorded step 10"):
        series.append(10, results)
    with pytest.raises(probe.ProbeError, match="as a list"):
        series.append(20, result)
    with pytest.raises(probe.ProbeError, match="same layers"):
        series.append(20, probe.snapshot_batch(model, inputs, LAYERS[:1], scale=1.0, **SOLVER))
    with pytest.raises(probe.ProbeError, match="scale=series.scale"):
        series.append(20, probe.snapshot_batch(model, inputs, LAYERS, scale=2.0, **SOLVER))
    series.save(tmp_path / "t.safetensors")
    back = probe.load(tmp_path / "t.safetensors")
    assert back.steps == [10] and math.isnan(back.epochs[0]) and back.words == [result.words]
    assert torch.equal(back.sigma[0][0], result.sigma) and back.settings["solver.samples"] == "8"
    assert back.convergence.tolist() == [[[e.converged] for e in result.values()]] and back.converged == result.converged
    assert "sentence 0, layer bert.encoder.layer.1" in back.table() and back.table().count("\n") > len(result.words)
    with pytest.raises(probe.ProbeError, match="no steps yet"):
        back.until(5).plot()


def tensorboard_events(folder):
    """Everything the TensorBoard event files in ``folder`` hold, read by TensorBoard's own reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    return events


def figure_pixels(figure):
    """What a full draw of a matplotlib figure gives, as RGB [height, width, 3]."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3]


def assert_records_in_tensorboard(events, series, last, layers=LAYERS):
    """Per record, one heatmap per sentence, the last one exactly what ``Sweep.plot`` draws of the
    last record (``last``: its Sweeps), and every layer's information loss of every sentence, at the
    recorded steps."""

    from io import BytesIO

    from matplotlib.image import imread

    tags = events.Tags()
    for i, words in enumerate(series.words):
        images = events.Images(f"probe/heatmap/sentence_{i}")
        assert [e.step for e in images] == series.steps
        pixels = (imread(BytesIO(images[-1].encoded_image_string), format="png")[..., :3] * 255).round().astype("uint8")
        assert pixels.std() > 10, "a drawn heatmap, not a blank"
        assert (pixels == figure_pixels(last[i].plot())).all(), "the heatmap Sweep.plot draws, pixel for pixel"
        assert not (pixels == (imread(BytesIO(images[0].encoded_image_string), format="png")[..., :3] * 255).round()).all(), "steps differ"
        for k, layer in enumerate(layers):
            scalars = events.Scalars(f"probe/information_loss/{layer}/sentence_{i}")
            assert [e.step for e in scalars] == series.steps
            expected = series.information_loss[i][:, k].sum(-1)
            assert [e.value for e in scalars] == pytest.approx(expected.tolist(), rel=1e-6)
    assert len(tags["images"]) == len(series.words) and len([t for t in tags["scalars"] if t.startswith("probe/")]) == len(series.words) * len(layers)


def test_trainer_reporting_to_tensorboard_gets_each_record_as_an_image_and_scalars(tokenizer, tmp_path):
    pytest.importorskip("tensorboard")
    path = tmp_path / "timestamps.safetensors"
    callback = SnapshotCallback(PROBES, LAYERS, path, every_n_steps=3, select=lambda h: h[:, 0], **SOLVER)
    args = TrainingArguments(
        output_dir=str(tmp_path / "trainer"), report_to=["tensorboard"], use_cpu=True, save_strategy="no", per_device_train_batch_size=8,
        num_train_epochs=2, learning_rate=5e-3, logging_strategy="steps", logging_steps=2, disable_tqdm=True, seed=0,
    )
    model = tiny_bert(tokenizer)
    Trainer(model=model, args=args, train_dataset=Sentences(tokenizer), processing_class=tokenizer, callbacks=[callback]).train()

    (folder,) = (tmp_path / "trainer" / "runs").iterdir()  # the Trainer's own TensorBoard folder, no other
    events = tensorboard_events(folder)
    assert [e.step for e in events.Scalars("train/loss")] == [2, 4, 6], "the Trainer's own scalars sit beside probe's"
    series = probe.load(path)
    assert series.steps == [0, 3, 6]
    inputs = tokenizer(PROBES, padding=True, return_tensors="pt")
    last = probe.snapshot_batch(model, inputs, LAYERS, scale=series.scale, select=lambda h: h[:, 0], tokenizer=tokenizer, **callback.solver)
    assert_records_in_tensorboard(events, series, last)


def test_lightning_callback_records_like_the_trainer_one_and_logs_to_tensorboard(tokenizer, tmp_path):
    lightning = pytest.importorskip("lightning.pytorch", reason="pip install 'sigma-probe[lightning]'")
    pytest.importorskip("tensorboard")
    from lightning.pytorch.loggers import TensorBoardLogger

    from probe.callbacks import LightningSnapshotCallback

    class Classifier(lightning.LightningModule):
        def __init__(self, model) -> None:
            super().__init__()
            self.model = model

        def training_step(self, batch, batch_idx):
            loss = self.model(**batch).loss
            self.log("train_loss", loss)
            return loss

        def configure_optimizers(self):
            return torch.optim.AdamW(self.parameters(), lr=5e-3)

    def fit(callbacks=(), logger=False) -> Classifier:
        module = Classifier(tiny_bert(tokenizer))
        loader = torch.utils.data.DataLoader(Sentences(tokenizer), batch_size=8, shuffle=False)
        trainer = lightning.Trainer(
            max_epochs=2, accelerator="cpu", devices=1, logger=logger, callbacks=list(callbacks), log_every_n_steps=1,
            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        )
        torch.manual_seed(0)  # the dropout stream, the same in both fits
        trainer.fit(module, loader)
        return module

    path = tmp_path / "lightning.safetensors"
    callback = LightningSnapshotCallback(
        PROBES, LAYERS, path, tokenizer=tokenizer, module="model", every_n_steps=4, on_epoch_end=True, scale=1.0, select=lambda h: h[:, 0], **SOLVER
    )
    logger = TensorBoardLogger(str(tmp_path), name="lit")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(num_workers|bottleneck|does not have many workers).*")
        swept = fit([callback], logger)
        plain = fit()

    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), swept.state_dict().values())), "the fit does not notice"
    series = probe.load(path)
    assert series.steps == [0, 3, 4, 6]  # start, epoch end, every 4, epoch end
    assert series.epochs == pytest.approx([0.0, 1.0, 4 / 3, 2.0])
    assert series.layers == LAYERS and series.sentences == PROBES and series.scale == 1.0
    inputs = tokenizer(PROBES, padding=True, return_tensors="pt")
    final = probe.snapshot_batch(swept.model, inputs, LAYERS, scale=1.0, select=lambda h: h[:, 0], tokenizer=tokenizer, **callback.solver)
    for i, sweep in enumerate(final):
        assert torch.equal(series.sigma[i][-1], sweep.sigma)

    events = tensorboard_events(logger.log_dir)
    assert len(events.Scalars("train_loss")) == 6, "Lightning's own scalars sit beside probe's"
    assert_records_in_tensorboard(events, series, final)


def lightning_trainer(global_step: int = 0, epoch: int = 0):
    """What the callback reads of a Lightning trainer on rank 0 (4 batches an epoch, no logger)."""
    return SimpleNamespace(is_global_zero=True, global_step=global_step, current_epoch=epoch, loggers=[], num_training_batches=4)


def test_lightning_callback_mistakes_are_probe_errors(tokenizer, tmp_path):
    pytest.importorskip("lightning.pytorch")
    from probe.callbacks import LightningSnapshotCallback

    with pytest.raises(probe.ProbeError, match="pass tokenizer="):
        LightningSnapshotCallback(PROBES, LAYERS, tmp_path / "s.safetensors", every_n_steps=5)
    with pytest.raises(probe.ProbeError, match="tensorboard must be True"):
        LightningSnapshotCallback(PROBES, LAYERS, tmp_path / "s.safetensors", tokenizer=tokenizer, every_n_steps=5, tensorboard="no")
    quiet = LightningSnapshotCallback(PROBES, LAYERS, tmp_path / "s.safetensors", tokenizer=tokenizer, every_n_steps=5, tensorboard=False)
    quiet._log_to(object())
    assert quiet.log is None, "tensorboard=False logs nowhere, even where the loop has TensorBoard"
    with pytest.raises(probe.ProbeError, match="every_n_steps=N, on_epoch_end=True"):
        LightningSnapshotCallback(PROBES, LAYERS, tmp_path / "s.safetensors", tokenizer=tokenizer)
    callback = LightningSnapshotCallback(PROBES, LAYERS, tmp_path / "s.safetensors", tokenizer=tokenizer, module="net", every_n_steps=5)
    with pytest.raises(probe.ProbeError, match="no submodule 'net'; its children: model"):
        holder = torch.nn.Module()
        holder.model = tiny_bert(tokenizer)
        callback.on_train_start(lightning_trainer(), holder)


def test_lightning_callback_records_its_steps_and_resumes_a_recorded_series(tokenizer, tmp_path):
    pytest.importorskip("lightning.pytorch")
    from probe.callbacks import LightningSnapshotCallback

    path = tmp_path / "series.safetensors"
    holder = torch.nn.Module()
    holder.model = tiny_bert(tokenizer)
    first = LightningSnapshotCallback(PROBES[0], LAYERS[0], path, tokenizer=tokenizer, module="model", every_n_steps=2, on_epoch_end=True, **SOLVER)
    first.on_train_start(lightning_trainer(), holder)
    for step in (1, 2, 3):
        first.on_train_batch_end(lightning_trainer(step), holder, None, None, step - 1)
    first.on_train_epoch_end(lightning_trainer(3), holder)
    assert probe.load(path).steps == [0, 2, 3] and probe.load(path).epochs == pytest.approx([0.0, 0.5, 1.0])

    resumed = LightningSnapshotCallback(PROBES[0], LAYERS[0], path, tokenizer=tokenizer, module="model", every_n_steps=2, at_start=False)
    resumed.on_train_start(lightning_trainer(2), holder)
    assert resumed.series.steps == [0, 2] and resumed.series.scale == first.series.scale
    assert torch.equal(resumed.series.sigma[0], first.series.sigma[0][:2])


def test_without_lightning_the_lightning_callback_says_how_to_install_it(monkeypatch):
    import probe.callbacks

    monkeypatch.delitem(sys.modules, "probe.callbacks._lightning", raising=False)
    monkeypatch.setitem(sys.modules, "lightning", None)
    monkeypatch.setitem(sys.modules, "lightning.pytorch", None)
    with pytest.raises(probe.ProbeError, match=r"pip install 'sigma-probe\[lightning\]'"):
        probe.callbacks.LightningSnapshotCallback
    assert probe.callbacks.SnapshotCallback is SnapshotCallback, "the HF Trainer callback needs no Lightning"
