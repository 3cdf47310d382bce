import json
import struct

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from charrnn.errors import CheckpointError
from charrnn.model.network import load_model
from charrnn.runs import checkpoint as ckpt
from charrnn.runs import folder as runfolder


def test_round_trip_gives_identical_logits(trained_run):
    c = ckpt.inspect(trained_run / "best.safetensors")
    model = load_model(c)
    twin = load_model(ckpt.inspect(trained_run / "best.safetensors"))
    idx = torch.randint(0, c.config.vocab_size, (2, 50))
    with torch.no_grad():
        assert torch.equal(model(idx)[0], twin(idx)[0])
    # the weights are plain tensors that torch's safe loader accepts as well
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    torch.save(sd, trained_run / "plain.pt")
    loaded = torch.load(trained_run / "plain.pt", weights_only=True)
    assert all(torch.equal(loaded[k], sd[k]) for k in sd)
    (trained_run / "plain.pt").unlink()


def test_metadata_holds_config_vocab_and_versions(trained_run):
    c = ckpt.inspect(trained_run / "latest.safetensors")
    assert c.meta["format"] == ckpt.FORMAT and c.meta["format_version"] == ckpt.FORMAT_VERSION
    assert "".join(c.meta["vocab"]) == "".join(sorted(set("".join(c.meta["vocab"]))))
    assert c.meta["model"]["hidden_size"] == 48
    assert c.meta["train"]["max_steps"] == 150
    assert {"charrnn", "torch", "python"} <= set(c.meta["versions"])
    assert "optim.0.exp_avg" in c.tensors and "rng.cpu" in c.tensors


def test_numpy_weights_equal_torch_weights(trained_run):
    c = ckpt.inspect(trained_run / "best.safetensors")
    sd = load_model(c).state_dict()
    for k, v in c.numpy_weights().items():
        np.testing.assert_array_equal(v, sd[k].numpy())


def _copy(trained_run, tmp_path, name="x.safetensors"):
    p = tmp_path / name
    p.write_bytes((trained_run / "best.safetensors").read_bytes())
    return p


def test_truncated_checkpoint_is_refused(trained_run, tmp_path):
    p = _copy(trained_run, tmp_path)
    p.write_bytes(p.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="truncated"):
        ckpt.inspect(p)


def test_foreign_and_garbage_files_are_refused(tmp_path):
    p = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, p)
    with pytest.raises(CheckpointError, match="no charrnn metadata"):
        ckpt.inspect(p)
    p.write_bytes(b"\x80\x04garbage that is not a checkpoint at all")
    with pytest.raises(CheckpointError, match="not a safetensors file"):
        ckpt.inspect(p)
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty or truncated"):
        ckpt.inspect(empty)


def test_pickle_is_never_loaded(tmp_path):
    marker = tmp_path / "pwned"
    payload = tmp_path / "model.pt"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    torch.save({"x": Evil()}, payload)
    with pytest.raises(CheckpointError, match="never loads pickles"):
        ckpt.inspect(payload)
    renamed = tmp_path / "model.safetensors"
    renamed.write_bytes(payload.read_bytes())
    with pytest.raises(CheckpointError):
        ckpt.inspect(renamed)
    assert not marker.exists()


def _edit_meta(path, edit):
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    meta = json.loads(header["__metadata__"]["charrnn"])
    edit(meta)
    header["__metadata__"]["charrnn"] = json.dumps(meta)
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + n :])


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.update(format_version=99), "newer charrnn"),
    (lambda m: m["model"].update(hidden_size=49), "config needs"),
    (lambda m: m["model"].update(hidden_size="big"), "hidden size must be a positive"),
    (lambda m: m["model"].update(cell="transformer"), "cell must be one of"),
    (lambda m: m.update(vocab=m["vocab"][:-1]), "vocabulary has"),
    (lambda m: m.pop("model"), "lacks 'model'"),
])
def test_edited_metadata_is_refused(trained_run, tmp_path, edit, message):
    p = _copy(trained_run, tmp_path)
    _edit_meta(p, edit)
    with pytest.raises(CheckpointError, match=message):
        ckpt.inspect(p)


def test_resolve_prefers_best_in_newest_run(trained_run, tmp_path):
    assert runfolder.resolve(trained_run) == trained_run / "best.safetensors"
    assert runfolder.resolve(None, trained_run.parent) == trained_run / "best.safetensors"
    with pytest.raises(CheckpointError, match="no checkpoints found"):
        runfolder.resolve(None, tmp_path / "none")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no checkpoints found"):
        runfolder.resolve(None, tmp_path / "empty")
