"""Fine-tuning with --init-from: weights only, vocabulary growth, lineage, bad sources."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from charrnn.data.text import Vocab
from charrnn.model.network import CharRNN, load_model
from charrnn.runs import checkpoint as ckpt
from charrnn.train import finetune
from tests.conftest import PATTERN


def _probs(model: CharRNN, ids: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        logits, _ = model(torch.as_tensor(ids[None].astype(np.int64)))
    return torch.softmax(logits[0].double(), dim=-1).numpy()


def test_grown_model_keeps_the_sources_distribution_over_old_characters(trained_run):
    c = ckpt.inspect(trained_run / "best.safetensors")
    source = load_model(c)
    # '!' sorts between ' ' and '.', 'Z' before the letters, 'é' after all: ids shift
    vocab = finetune.grown_vocab(c.vocab, Vocab.from_text("!Z\u00e9 the"))
    assert len(vocab) == len(c.vocab) + 3
    grown = CharRNN(finetune.model_config(c, vocab, None, None, None, None, None))
    grown.load_state_dict({k: torch.from_numpy(v)
                           for k, v in finetune.grown_weights(c, vocab).items()})
    grown.eval()
    text = (PATTERN * 3)[:120]
    old_ids = c.vocab.encode(text)
    p_src, p_new = _probs(source, old_ids), _probs(grown, vocab.encode(text))
    old = [vocab.chars.index(ch) for ch in c.vocab.chars]  # each old char's new id
    new_mass = np.delete(p_new, old, axis=1).sum(axis=1)
    assert new_mass.max() <= finetune.NEW_MASS
    assert np.abs(p_new[:, old] - p_src).max() <= 1e-5  # the probabilities themselves
    renormalised = p_new[:, old] / p_new[:, old].sum(axis=1, keepdims=True)
    assert np.abs(renormalised - p_src).max() <= 1e-6
    # and every old character keeps its embedding under its new id
    emb = finetune.grown_weights(c, vocab)["embed.weight"]
    assert np.array_equal(emb[old], c.numpy_weights()["embed.weight"])


def test_init_from_trains_a_new_run_learns_new_characters_and_records_lineage(
        cli, trained_run, tmp_path):
    new_text = PATTERN.replace(".", "!") * 40  # '!' is new to the source
    (tmp_path / "new.txt").write_text(new_text)
    r = cli("train", "new.txt", "--init-from", trained_run, "--max-steps", "30",
            "--lr", "0.03", "--warmup", "0", "--dropout", "0", "-b", "8", "-t", "32")
    assert r.exit_code == 0, r
    run = tmp_path / "checkpoints" / "new"
    c = ckpt.inspect(run / "latest.safetensors")
    assert c.config.hidden_size == 48 and c.config.num_layers == 1  # the source's
    assert "!" in c.vocab and c.meta["progress"]["step"] == 30  # its own count, from 0
    assert c.meta["train"]["lr"] == 0.03 and c.meta["train"]["max_time"] is None
    lineage = c.meta["init_from"]
    assert lineage["checkpoint"] == str((trained_run / "best.safetensors").resolve())
    assert lineage["corpus"].endswith("pattern.txt") and lineage["added_chars"] == "!"
    assert "fine-tuned from" in cli("info", run).stdout
    # the new character is learned: '!' after "the mat" became likely
    model = load_model(ckpt.inspect(run / "best.safetensors"))
    prime = c.vocab.encode("the cat sat on the mat")
    assert _probs(model, prime)[-1, c.vocab.chars.index("!")] > 0.5
    r = cli("train", "new.txt", "-o", run, "--resume", "--max-steps", "31")
    assert r.exit_code == 0, r
    assert ckpt.inspect(run / "latest.safetensors").meta["init_from"] == lineage


@pytest.mark.parametrize(("cell", "lr"), [("lstm", 0.016), ("gru", 0.008)])
def test_fine_tuning_takes_the_source_cells_learning_rate_and_a_short_warm_up(
        cli, corpus_file, cell, lr):
    r = cli("train", corpus_file, "-o", "src", "--cell", cell, "--layers", "1",
            "--hidden-size", "16", "--embed-size", "8", "--max-steps", "1")
    assert r.exit_code == 0, r
    r = cli("train", corpus_file, "-o", "ft", "--init-from", "src", "--max-steps", "1")
    assert r.exit_code == 0, r
    train = ckpt.inspect("ft/latest.safetensors").meta["train"]
    assert (train["lr"], train["warmup_steps"]) == (lr, finetune.WARMUP)


def _one_line(r, code: int) -> None:
    assert r.exit_code == code, r
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r


def test_bad_sources_and_conflicting_options_are_one_line_errors(cli, trained_run, tmp_path):
    from safetensors.numpy import save_file

    (tmp_path / "t.txt").write_text(PATTERN * 20)
    save_file({"w": np.zeros(3, np.float32)}, str(tmp_path / "foreign.safetensors"))
    blob = (trained_run / "best.safetensors").read_bytes()
    (tmp_path / "damaged.safetensors").write_bytes(blob[: len(blob) - 100])
    shutil.copy(trained_run / "best.safetensors", tmp_path / "ok.safetensors")
    for source, message in (("missing", "no such run or checkpoint: missing"),
                            ("foreign.safetensors", "no charrnn metadata"),
                            ("damaged.safetensors", "truncated")):
        r = cli("train", "t.txt", "-o", "x", "--init-from", source)
        _one_line(r, 1)
        assert message in r.stderr, r
    for extra, message in ((["--cell", "gru"], "--cell gru (the source has lstm)"),
                           (["--hidden-size", "64"], "--hidden-size 64 (the source has 48)"),
                           (["--resume"], "--init-from starts a new run"),
                           (["-o", ".", "--force"], "the run folder the new run would replace")):
        r = cli("train", "t.txt", "-o", "x", "--init-from", "ok.safetensors", *extra)
        _one_line(r, 2)
        assert message in r.stderr, r
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("cell", ["gru", "rnn"])
def test_new_head_rows_bound_holds_for_every_cell(tmp_path, cell):
    """The bound holds whatever the weights: check it on large random ones, each cell."""
    from charrnn.config import ModelConfig

    torch.manual_seed(0)
    vocab = Vocab(tuple("abc"))
    config = ModelConfig(vocab_size=3, cell=cell, num_layers=2, hidden_size=8, embed_size=4)
    model = CharRNN(config)
    with torch.no_grad():
        model.head.weight.mul_(20)  # large logits: the bound must still hold
    meta = ckpt.build_meta(config, vocab)
    ckpt.write(tmp_path / "m.safetensors", {k: v.contiguous() for k, v in
                                            model.state_dict().items()}, meta)
    c = ckpt.inspect(tmp_path / "m.safetensors")
    grown_vocab = Vocab(tuple("Zabcd"))
    grown = CharRNN(finetune.model_config(c, grown_vocab, None, None, None, None, None))
    grown.load_state_dict({k: torch.from_numpy(v)
                           for k, v in finetune.grown_weights(c, grown_vocab).items()})
    p = _probs(grown.eval(), np.random.default_rng(0).integers(1, 4, 200))
    assert p[:, [0, 4]].sum(axis=1).max() <= finetune.NEW_MASS
