"""One step of the model as an ONNX graph, for ONNX Runtime on phones, in C#, Java or the
browser.

    inputs   ids (int64, [batch]); h0 .. h{L-1} (float32, [batch, hidden]); an LSTM also
             c0 .. c{L-1}
    outputs  logits (float32, [batch, vocab]); h0_out ..; c0_out ..: the next state, in
             the order of the state inputs
    metadata vocab (the characters, a JSON list: id = position), cell, num_layers,
             hidden_size, charrnn_version

The state is an explicit input and output (ONNX Runtime keeps nothing between calls),
so a caller feeds each step's new state into the next, and any batch size works. The
graph is built node by node with the ``onnx`` package's helpers, not traced from torch:
exporting needs no torch, and the graph is the numpy engine's equations (Gather for the
embedding, Gemm per weight matrix, Sigmoid/Tanh gates in torch's gate order), float32
weights as stored.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from charrnn.config import GATES
from charrnn.errors import CharRNNError
from charrnn.runs.checkpoint import Checkpoint
from charrnn.safetext import dumps

OPSET = 17  # Split with a sizes input (13+), supported by ONNX Runtime 1.13 and later
IR_VERSION = 8  # the IR that opset 17 came with: older runtimes read the file too


def state_names(cell: str, layers: int) -> list[str]:
    """h0 .. h{L-1}, then c0 .. c{L-1} for an LSTM: the state inputs, in order."""
    return [f"h{i}" for i in range(layers)] + (
        [f"c{i}" for i in range(layers)] if cell == "lstm" else [])


def onnx_bytes(c: Checkpoint) -> bytes:
    """The serialized ONNX model of one step of ``c``."""
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        raise CharRNNError("the ONNX export needs the onnx package: "
                           "pip install 'charrnn[onnx]'") from None
    m, w = c.config, c.numpy_weights()
    h, cell = m.hidden_size, m.cell
    nodes: list[Any] = []
    count = iter(range(1 << 30))

    def op(kind: str, *inputs: str, out: str | None = None, n: int = 1, **attrs) -> Any:
        """Add a node; its output name (or names, for n > 1)."""
        names = [out] if out else [f"{kind.lower()}_{next(count)}" for _ in range(n)]
        nodes.append(helper.make_node(kind, list(inputs), names, **attrs))
        return names[0] if n == 1 else names

    def linear(x: str, weight: str, bias: str) -> str:
        return op("Gemm", x, weight, bias, transB=1)  # x @ W.T + b

    inits = [numpy_helper.from_array(a, name) for name, a in w.items()]
    if GATES[cell] > 1:  # where the gates are split: each block is hidden_size wide
        inits.append(numpy_helper.from_array(np.full(GATES[cell], h, np.int64), "gate_sizes"))
    states = state_names(cell, m.num_layers)
    x = op("Gather", "embed.weight", "ids", axis=0)  # (B, E)
    for i in range(m.num_layers):
        hp = f"h{i}"
        gi = linear(x, f"rnn.weight_ih_l{i}", f"rnn.bias_ih_l{i}")
        gh = linear(hp, f"rnn.weight_hh_l{i}", f"rnn.bias_hh_l{i}")
        if cell == "lstm":
            ig, fg, gg, og = op("Split", op("Add", gi, gh), "gate_sizes", axis=1, n=4)
            c_new = op("Add", op("Mul", op("Sigmoid", fg), f"c{i}"),
                       op("Mul", op("Sigmoid", ig), op("Tanh", gg)), out=f"c{i}_out")
            h_new = op("Mul", op("Sigmoid", og), op("Tanh", c_new), out=f"h{i}_out")
        elif cell == "gru":
            ir, iz, in_ = op("Split", gi, "gate_sizes", axis=1, n=3)
            hr, hz, hn = op("Split", gh, "gate_sizes", axis=1, n=3)
            r, z = op("Sigmoid", op("Add", ir, hr)), op("Sigmoid", op("Add", iz, hz))
            n = op("Tanh", op("Add", in_, op("Mul", r, hn)))
            h_new = op("Add", n, op("Mul", z, op("Sub", hp, n)), out=f"h{i}_out")  # (1-z)n + zh
        else:
            h_new = op("Tanh", op("Add", gi, gh), out=f"h{i}_out")
        x = h_new
    op("Gemm", x, "head.weight", "head.bias", transB=1, out="logits")

    def tensor(name: str, elem: int, *dims: Any) -> Any:
        return helper.make_tensor_value_info(name, elem, ["batch", *dims])

    f32 = TensorProto.FLOAT
    graph = helper.make_graph(
        nodes, "charrnn_step",
        [tensor("ids", TensorProto.INT64)] + [tensor(s, f32, h) for s in states],
        [tensor("logits", f32, m.vocab_size)] + [tensor(f"{s}_out", f32, h) for s in states],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              ir_version=IR_VERSION, producer_name="charrnn")
    meta = {"vocab": dumps(c.meta["vocab"]), "cell": cell,
            "num_layers": str(m.num_layers), "hidden_size": str(h),
            "charrnn_version": str(c.meta.get("versions", {}).get("charrnn", ""))}
    helper.set_model_props(model, meta)
    onnx.checker.check_model(model)
    return model.SerializeToString()
