"""charrnn export: ONNX against the numpy engine, the Hugging Face folder read back by
every command, the web files, and bad input (one line, nothing half-written).

The browser side (the JavaScript engine in headless Chromium) is in
tests/test_export_browser.py.
"""

from __future__ import annotations

import errno
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_bad_input import _one_line_error

from charrnn import api, files
from charrnn.config import ModelConfig
from charrnn.data.text import Vocab
from charrnn.export import hub, web
from charrnn.export.onnxgraph import state_names
from charrnn.model.infer import NumpyRNN
from charrnn.runs import checkpoint as ckpt
from charrnn.runs import exported
from charrnn.score.measures import bits

ROOT = Path(__file__).resolve().parents[1]
TEXT = "the cat sat on the mat.\nthe dog ate the log.\n\u00e9\U0001f642"  # é and an astral
CELLS = ("lstm", "gru", "rnn")


def random_checkpoint(folder: Path, cell: str, hidden: int = 30, layers: int = 2,
                      seed: int = 0, scale: float = 1.0) -> Path:
    """A checkpoint with random weights (2 layers: every code path of the engines) and the
    metadata a trained one carries; hidden 30 pads the GRU's and RNN's gate rows."""
    vocab = Vocab.from_text(TEXT)
    config = ModelConfig(vocab_size=len(vocab), cell=cell, num_layers=layers,
                         hidden_size=hidden, embed_size=8, dropout=0.0)
    rng = np.random.default_rng(seed)
    weights = {k: (rng.standard_normal(s) * scale / np.sqrt(s[-1])).astype(np.float32)
               for k, s in config.weight_shapes().items()}
    weights["embed.weight"] *= np.sqrt(8)  # embeddings of unit scale
    meta = ckpt.build_meta(
        config, vocab, corpus={"source": "made-up.txt", "digest": "0123abcd",
                               "train_chars": 900, "val_chars": 100},
        progress={"step": 321, "val_loss": 1.25, "best_val_loss": 1.25},
        train={"val_fraction": 0.1, "val_max_chars": 1000, "batch_size": 4, "seq_len": 8},
        init_from={"checkpoint": "checkpoints/base/best.safetensors", "corpus": "base.txt",
                   "digest": "feedbeef", "step": 77, "best_val_loss": 1.5})
    path = folder / cell / "best.safetensors"
    ckpt.write(path, weights, meta)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("models")
    return {cell: random_checkpoint(out, cell) for cell in CELLS}


# --------------------------------------------------------------------------- ONNX
@pytest.mark.parametrize("cell", CELLS)
def test_onnx_step_equals_the_numpy_engine(models, cell, tmp_path, cli):
    ort = pytest.importorskip("onnxruntime")
    r = cli("export", models[cell], "--onnx", tmp_path / "m.onnx")
    assert r.exit_code == 0 and r.stdout == "", r
    session = ort.InferenceSession(str(tmp_path / "m.onnx"))
    c = ckpt.inspect(models[cell])
    engine, names = NumpyRNN.from_checkpoint(c), state_names(cell, 2)
    assert [i.name for i in session.get_inputs()] == ["ids", *names]
    assert [o.name for o in session.get_outputs()] == ["logits", *(n + "_out" for n in names)]
    meta = session.get_modelmeta().custom_metadata_map
    assert json.loads(meta["vocab"]) == list(c.vocab.chars) and meta["cell"] == cell
    rng = np.random.default_rng(1)
    for batch in (1, 3):  # the batch axis is dynamic
        state = engine.init_state(batch)
        fed = {n: np.zeros((batch, 30), np.float32) for n in names}
        for _ in range(40):  # the state carried from step to step
            ids = rng.integers(0, len(c.vocab), batch)
            logits, state = engine.step(ids, state)
            out = session.run(None, {"ids": ids.astype(np.int64), **fed})
            fed = dict(zip(names, out[1:], strict=True))
            np.testing.assert_allclose(out[0], logits, atol=1e-5, rtol=0)
            for got, want in zip(out[1:], state, strict=True):
                np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


def _doc_loop() -> str:
    doc = (ROOT / "docs" / "export.md").read_text(encoding="utf-8")
    section = doc.split("### A sampling loop with onnxruntime alone", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_docs_onnxruntime_loop_reproduces_greedy_sampling(trained_run, tmp_path, cli):
    pytest.importorskip("onnxruntime")
    assert cli("export", trained_run, "--onnx", tmp_path / "model.onnx").exit_code == 0
    r = subprocess.run([sys.executable, "-c", _doc_loop()], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    sample = cli("sample", "-c", trained_run, "--temp", "0", "-p", "the ", "-n", "200")
    assert sample.exit_code == 0 and len(sample.stdout) == 204
    assert r.stdout == sample.stdout + "\n"


# --------------------------------------------------------------------------- Hugging Face
def test_hf_folder_holds_weights_config_and_a_card_the_hub_reads(models, tmp_path, cli):
    out = tmp_path / "hub" / "lstm-demo"
    r = cli("export", models["lstm"], "--hf", out)
    assert r.exit_code == 0 and r.stdout == "", r
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json",
                                                     "model.safetensors"]
    c, back = ckpt.inspect(models["lstm"]), ckpt.inspect(out / "model.safetensors")
    assert set(back.tensors) == set(c.config.weight_shapes())  # weights only
    for name, a in c.numpy_weights().items():
        np.testing.assert_array_equal(back.numpy_weights()[name], a)
    assert {k: v for k, v in back.meta.items()} == c.meta  # lineage, digest, progress kept
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    assert config == {"model_type": "charrnn", **c.meta["model"], "vocab": list(c.vocab.chars),
                      "weights": "model.safetensors",
                      "format": "charrnn-checkpoint", "format_version": 1}
    from huggingface_hub import ModelCard

    card = ModelCard.load(out / "README.md")
    assert card.data.library_name == "charrnn"
    assert card.data.pipeline_tag == "text-generation"
    assert {"charrnn", "char-rnn", "character-level", "lstm"} <= set(card.data.tags)
    (result,) = card.data.eval_results
    assert result.task_type == "text-generation" and result.dataset_name == "made-up.txt"
    assert result.metric_type == "bits_per_character"
    assert result.metric_value == pytest.approx(bits(1.25), abs=1e-4)
    text = card.text
    assert "**1.8034 bits per character** (1.2500 nats/char) at step 321" in text
    assert "the last 10% of the corpus, 100 characters" in text
    assert "`0123abcd`" in text  # the corpus digest
    assert "fine-tuned from" in text and "feedbeef" in text  # the lineage
    assert "charrnn sample -c lstm-demo" in text


def test_an_hf_folder_loads_in_sample_eval_serve_and_the_api(trained_run, tmp_path, cli):
    out = tmp_path / "pattern-hf"
    assert cli("export", trained_run, "--hf", out).exit_code == 0
    args = ["-p", "the ", "-n", "150", "--seed", "3", "--temp", "0.9"]
    from_run, from_hf = cli("sample", "-c", trained_run, *args), cli("sample", "-c", out, *args)
    assert from_hf.exit_code == 0 and from_hf.stdout == from_run.stdout, from_hf
    assert api.load(out).generate("the ", length=80, seed=1) == \
        api.load(trained_run).generate("the ", length=80, seed=1)
    scores = [json.loads(cli("eval", "-c", p, "--json").stdout) for p in (trained_run, out)]
    assert scores[1]["loss"] == pytest.approx(scores[0]["loss"], abs=1e-6)
    info = cli("info", out)
    assert info.exit_code == 0 and "model.safetensors" in info.stdout
    import httpx
    from test_serve import running

    from charrnn.serve.app import Limits, create_app
    from charrnn.serve.models import Models

    with running(create_app(Models(target=str(out)), Limits())) as url:
        body = httpx.post(f"{url}/v1/completions", json={
            "prompt": "the ", "max_tokens": 60, "temperature": 0.9, "seed": 3}).json()
    assert body["model"] == "pattern-hf"
    assert "the " + body["choices"][0]["text"] == from_run.stdout[:64]


def test_an_hf_folder_from_latest_leaves_the_optimizer_behind(trained_run, tmp_path, cli):
    latest = trained_run / "latest.safetensors"
    assert "optimizer" in ckpt.inspect(latest).meta
    assert cli("export", latest, "--hf", tmp_path / "m").exit_code == 0
    back = ckpt.inspect(tmp_path / "m" / "model.safetensors")
    assert set(back.tensors) == set(back.config.weight_shapes())
    assert "optimizer" not in back.meta and back.meta["corpus"] == \
        ckpt.inspect(latest).meta["corpus"]
    model_json = tmp_path / "site" / "model.json"
    assert cli("export", latest, "--web-dir", tmp_path / "site").exit_code == 0
    about = json.loads(model_json.read_text(encoding="utf-8"))["about"]
    assert about["corpus"] == "pattern.txt" and "/" not in json.dumps(about)  # no paths


def test_an_hf_folder_missing_its_weights_or_edited_is_one_line(trained_run, tmp_path, cli):
    out = tmp_path / "m"
    assert cli("export", trained_run, "--hf", out).exit_code == 0
    (out / "model.safetensors").rename(tmp_path / "away.safetensors")
    r = cli("sample", "-c", out, "-n", "5")
    _one_line_error(r, 1)
    assert f"{out} is an exported charrnn model but model.safetensors is missing" in r.stderr
    (tmp_path / "away.safetensors").rename(out / "model.safetensors")
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**config, "hidden_size": 7}))
    r = cli("sample", "-c", out, "-n", "5")
    _one_line_error(r, 1)
    assert "config.json beside it disagrees with the weights' header on hidden_size" in r.stderr
    (out / "config.json").write_text("{not json")
    r = cli("sample", "-c", out, "-n", "5")
    _one_line_error(r, 1)
    assert "config.json cannot be read as JSON" in r.stderr


# --------------------------------------------------------------------------- web files
def test_web_folder_files_and_weights(models, tmp_path, cli):
    for dtype, size in (("float32", 4), ("float16", 2)):
        out = tmp_path / dtype
        r = cli("export", models["gru"], "--web-dir", out, "--dtype", dtype)
        assert r.exit_code == 0, r
        assert sorted(p.name for p in out.iterdir()) == ["charrnn.js", "index.html",
                                                         "model.json", "weights.bin"]
        meta = json.loads((out / "model.json").read_text(encoding="utf-8"))
        assert meta["vocab"] == list(Vocab.from_text(TEXT).chars) and meta["dtype"] == dtype
        assert meta["about"]["step"] == 321 and meta["about"]["digest"] == "0123abcd"
        blob = (out / "weights.bin").read_bytes()
        weights = ckpt.inspect(models["gru"]).numpy_weights()
        assert len(blob) == size * sum(a.size for a in weights.values())
        for t in meta["tensors"]:
            a = np.frombuffer(blob, f"<f{size}", int(np.prod(t["shape"])), t["offset"])
            np.testing.assert_array_equal(a.reshape(t["shape"]),
                                          weights[t["name"]].astype(f"<f{size}"))
        assert (out / "charrnn.js").read_text(encoding="utf-8") == web.engine_source()


def test_the_engine_offers_every_decoding_control_with_its_bounds():
    """charrnn.js's CONTROLS (which the page's form is built from) against Decoding: a
    control added there without the engine learning it fails here."""
    from charrnn.generate.decoding import CONTROLS, spec

    source = web.engine_source()
    block = re.search(r"export const CONTROLS = \{(.*?)\n\};", source, re.S).group(1)
    js = {m[0]: (float(m[1]), float(m[2]), None if m[3] == "null" else float(m[3]))
          for m in re.findall(r"(\w+): \{ default: ([\d.]+), min: ([\d.]+), max: (\w+|[\d.]+)",
                              block)}
    assert set(CONTROLS) <= set(js), set(CONTROLS) - set(js)
    for name, field in CONTROLS.items():
        s = spec(name)
        assert js[name] == (field.default, s.min, s.max), name
    assert js["min_p"] == (0.0, 0.0, 1.0)  # offered now; Decoding gains it in parallel


def test_the_wheel_ships_the_engine_and_the_page():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    shipped = set(data["package-data"]["charrnn.export"])
    folder = ROOT / "charrnn" / "export"
    assert shipped == {p.name for p in folder.iterdir() if p.suffix in (".js", ".html")}


def test_every_export_runs_without_torch(trained_run, tmp_path):
    code = ("import sys; from charrnn.cli import main; "
            f"code = main(['export', {str(trained_run)!r}, '--web', 'p.html', '--web-dir', "
            "'site', '--onnx', 'm.onnx', '--hf', 'hub']); "
            "print(code, 'torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=tmp_path, timeout=120)
    assert r.stdout == "0 False\n", r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hub", "m.onnx", "p.html", "site"]


# --------------------------------------------------------------------------- bad input
def test_nothing_to_export_or_an_unknown_format_is_a_usage_error(trained_run, cli):
    for args in ([], ["--tflite", "m.tflite"], ["--web", "p.html", "--dtype", "float8"]):
        r = cli("export", trained_run, *args)
        _one_line_error(r, 2)
    assert "nothing to export" in cli("export", trained_run).stderr
    r = cli("export", trained_run, "--web", "same", "--onnx", "same")
    _one_line_error(r, 2)
    assert "two exports given the same path" in r.stderr


def test_a_foreign_checkpoint_is_one_line_and_writes_nothing(tmp_path, cli):
    from safetensors.numpy import save_file

    save_file({"w": np.zeros(3, np.float32)}, str(tmp_path / "other.safetensors"))
    r = cli("export", tmp_path / "other.safetensors", "--web", "p.html", "--hf", "hub")
    _one_line_error(r, 1)
    assert "no charrnn metadata" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.safetensors"]


def test_unwritable_outputs_are_refused_before_anything_is_written(trained_run, tmp_path, cli):
    (tmp_path / "a-file").write_text("x")
    for flag in ("--web", "--onnx", "--web-dir", "--hf"):
        r = cli("export", trained_run, "--onnx", "ok.onnx", flag, tmp_path / "a-file" / "x")
        _one_line_error(r, 1)
        assert "is a file" in r.stderr
        assert not (tmp_path / "ok.onnx").exists()  # the good one was not written either
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    r = cli("export", trained_run, "--hf", tmp_path / "mine")
    _one_line_error(r, 1)
    assert "already holds files that charrnn export did not write" in r.stderr
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]


def test_weights_beyond_float16_are_refused_and_nothing_is_written(tmp_path, cli):
    path = random_checkpoint(tmp_path, "rnn", scale=1e6)
    r = cli("export", path, "--hf", "hub", "--web-dir", "site")
    _one_line_error(r, 1)
    assert "beyond float16's range" in r.stderr and "--dtype float32" in r.stderr
    assert not (tmp_path / "hub").exists() and not (tmp_path / "site").exists()
    assert cli("export", path, "--web-dir", "site", "--dtype", "float32").exit_code == 0


def test_a_folder_appears_whole_or_not_at_all(trained_run, tmp_path, monkeypatch, cli):
    """A write that fails midway (here the disk fills at the second file) leaves no
    folder and no temporary one; an earlier export stays as it was."""
    out = tmp_path / "hub"
    real, calls = os.fsync, []

    def full(fd):
        calls.append(fd)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd)

    monkeypatch.setattr(files.os, "fsync", full)
    r = cli("export", trained_run, "--hf", out)
    _one_line_error(r, 1)
    assert f"cannot write {out}: No space left on device" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no folder, no temporary one
    monkeypatch.setattr(files.os, "fsync", real)
    assert cli("export", trained_run, "--hf", out).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    calls.clear()
    monkeypatch.setattr(files.os, "fsync", full)
    assert cli("export", trained_run, "--hf", out).exit_code == 1
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hub"]
    monkeypatch.setattr(files.os, "fsync", real)
    assert cli("export", trained_run, "--hf", out).exit_code == 0  # replaces an earlier one
    assert exported.weights_in(out) == out / "model.safetensors"
    assert hub.is_hub_folder(out) and not web.is_web_folder(out)
