"""The torch model: embedding -> fused multi-layer LSTM/GRU/RNN -> dropout -> linear head.

Training and evaluation run torch's fused recurrent kernels over whole (B, T) chunks;
there is no Python loop over time steps. ``model.infer`` holds the same equations
written out step by step in numpy for fast, torch-free sampling.
"""

from __future__ import annotations

import torch
from torch import nn

from charrnn.config import ModelConfig
from charrnn.errors import CheckpointError
from charrnn.files import open_regular
from charrnn.runs.checkpoint import Checkpoint, require_finite

State = torch.Tensor | tuple[torch.Tensor, torch.Tensor]
"""Recurrent state: h (L, B, H), or (h, c) for an LSTM."""

_RNN_CLASSES = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


class CharRNN(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.embed_size)
        kwargs = {"nonlinearity": "tanh"} if config.cell == "rnn" else {}
        self.rnn = _RNN_CLASSES[config.cell](
            config.embed_size,
            config.hidden_size,
            num_layers=config.num_layers,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
            batch_first=True,
            **kwargs,
        )
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden_size, config.vocab_size)
        if config.cell == "lstm":
            # Forget-gate bias 1: remember by default early in training (Jozefowicz et al.).
            h = config.hidden_size
            with torch.no_grad():
                for name, p in self.rnn.named_parameters():
                    if name.startswith("bias_ih"):
                        p[h : 2 * h].fill_(1.0)
                    elif name.startswith("bias_hh"):
                        p[h : 2 * h].fill_(0.0)

    def forward(
        self, idx: torch.Tensor, state: State | None = None
    ) -> tuple[torch.Tensor, State]:
        """idx (B, T) int64 -> logits (B, T, V) and the state after the last step."""
        x = self.embed(idx)  # (B, T, E)
        out, state = self.rnn(x, state)  # (B, T, H)
        return self.head(self.drop(out)), state  # (B, T, V)


def detach_state(state: State) -> State:
    """Cut the graph at the chunk edge: truncated BPTT keeps the values, not the history."""
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)  # type: ignore[return-value]
    return state.detach()


def load_tensors(checkpoint: Checkpoint, device: str = "cpu") -> dict[str, torch.Tensor]:
    """All tensors of a checkpoint as torch tensors (safetensors: no pickle, no code).

    Read through ``open_regular`` (a FIFO never blocks, a name need not be UTF-8, as
    safetensors' own file loader wants)."""
    from safetensors.torch import load

    try:
        with open_regular(checkpoint.path) as f:
            data = f.read()
        return {k: v.to(device) for k, v in load(data).items()}
    except Exception as e:
        raise CheckpointError(f"{checkpoint.path}: cannot read weights ({e})") from None


def load_model(checkpoint: Checkpoint, device: str = "cpu") -> CharRNN:
    """A ``CharRNN`` in eval mode with the checkpoint's weights."""
    tensors = load_tensors(checkpoint, device)
    weights = {k: tensors[k] for k in checkpoint.config.weight_shapes()}
    require_finite(checkpoint.path, (w.isfinite().all() for w in weights.values()))
    model = CharRNN(checkpoint.config).to(device)
    model.load_state_dict(weights)
    return model.eval()
