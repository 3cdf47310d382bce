"""What training writes down besides losses: the gradient norm before clipping and the
share of steps clipped per log interval (metrics.jsonl), and the same records mirrored as
TensorBoard events (``train --tensorboard``)."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from charrnn.config import ModelConfig, TrainConfig
from charrnn.data.corpus import Corpus
from charrnn.train.loop import Trainer
from charrnn.train.record import Interval


def _records(run, kind):
    lines = (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == kind]


def _trainer(tmp_path, clip, log_every=1, steps=6):
    p = tmp_path / "t.txt"
    p.write_text("to be or not to be, that is the question.\n" * 60, encoding="utf-8")
    corpus = Corpus.load(str(p), 0.1)
    mc = ModelConfig(vocab_size=len(corpus.vocab), hidden_size=16, num_layers=1,
                     embed_size=8, dropout=0.0)
    cfg = TrainConfig(batch_size=4, seq_len=16, max_steps=steps, warmup_steps=2,
                      grad_clip=clip, log_every=log_every, preview=0, precision="fp32")
    return Trainer(mc, cfg, corpus, tmp_path / f"run-{clip}")


def test_the_logged_norm_is_the_gradient_norm_before_clipping(tmp_path):
    t = _trainer(tmp_path, clip=0.05)
    # the first step by hand, on the same weights and chunk: the norm before clipping
    xs, ys = t._batches(0).chunk(0)
    logits, _ = t.model(torch.from_numpy(xs))
    F.cross_entropy(logits.flatten(0, 1), torch.from_numpy(ys).flatten()).backward()
    norm = math.sqrt(sum(float((p.grad ** 2).sum()) for p in t.model.parameters()))
    t.model.zero_grad(set_to_none=True)
    assert norm > 0.05  # so this step is clipped
    t.run()
    train = _records(t.run_dir, "train")
    assert len(train) == 6
    assert train[0]["grad_norm"] == pytest.approx(norm, rel=1e-5)
    assert train[0]["grad_norm_max"] == train[0]["grad_norm"]
    assert all(r["clipped"] == 1.0 for r in train)  # every norm is far above 0.05
    assert "grad_norm" not in _records(t.run_dir, "val")[0]


def test_no_clipping_clips_nothing_and_an_interval_averages_its_steps(tmp_path):
    t = _trainer(tmp_path, clip=0.0, log_every=3)
    t.run()
    train = _records(t.run_dir, "train")
    assert [r["step"] for r in train] == [3, 6]
    assert all(r["clipped"] == 0.0 and r["grad_norm_max"] >= r["grad_norm"] > 0
               for r in train)
    i = Interval(clip=1.0)
    for loss, norm in ((2.0, 0.5), (1.0, 3.0), (1.5, 0.5)):
        i.add(loss, norm)
    assert i.take() == {"loss": 1.5, "grad_norm": 4 / 3, "grad_norm_max": 3.0,
                        "clipped": 1 / 3}
    assert i.steps == 0  # the next interval starts empty


def test_tensorboard_events_mirror_the_metrics_log(cli, corpus_file, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    board = tmp_path / "tb"
    r = cli("train", corpus_file, "-o", "run", "--hidden-size", "16", "--layers", "1",
            "--embed-size", "8", "--max-steps", "40", "--eval-every", "20", "--log-every",
            "10", "-b", "4", "-t", "16", "--preview", "30", "--tensorboard", board)
    assert r.exit_code == 0, r
    events = EventAccumulator(str(board), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    run = tmp_path / "run"

    def scalars(tag):
        return [(e.step, e.value) for e in events.Scalars(tag)]

    train = _records(run, "train")
    for key in ("loss", "grad_norm", "grad_norm_max", "clipped", "lr"):
        assert scalars(f"train/{key}") == [
            (r["step"], pytest.approx(r[key], rel=1e-6)) for r in train], key
    assert scalars("val/loss") == [(r["step"], pytest.approx(r["loss"], rel=1e-6))
                                   for r in _records(run, "val")]
    texts = [(e.step, e.tensor_proto.string_val[0].decode())
             for e in events.Tensors("preview/text_summary")]
    previews = _records(run, "preview")
    assert len(previews) == 2
    assert texts == [(p["step"], "    " + p["text"].replace("\n", "\n    ")) for p in previews]


def test_tensorboard_to_a_file_is_one_line(cli, corpus_file, tmp_path):
    (tmp_path / "afile").write_text("x")
    r = cli("train", corpus_file, "-o", "run", "--max-steps", "2", "--tensorboard",
            tmp_path / "afile")
    assert r.exit_code == 1 and r.stderr.startswith("charrnn: error: --tensorboard: cannot "
                                                    "write to"), r
    assert not (tmp_path / "run" / "metrics.jsonl").exists()
