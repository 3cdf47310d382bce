"""The gradients command's work: for each run, the gradient flow through time
(``score.gradients``) and the context it uses (``score.context``), on the same text.

The text is the run's held-out split (as ``charrnn eval`` scores it: the first of the
validation windows) or a file, cut to ``max_chars``: what is measured is a sample
(windows and positions spread over it), so a longer text adds time, not much accuracy.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from charrnn.config import FlowConfig
from charrnn.model.device import Governor, pick_device
from charrnn.model.network import load_model
from charrnn.runs import folder as runfolder
from charrnn.score.context import ContextUse, context_use
from charrnn.score.gradients import GradientFlow, gradient_flow
from charrnn.score.texts import eval_text
from charrnn.threads import Load


@dataclass
class RunFlow:
    """One run's measurements, as plain data for the table and the page."""

    label: str  # the run folder's name (its path when two runs share one)
    checkpoint: str
    cell: str
    size: str  # "2x256"
    seq_len: int | None  # the training window T, if recorded
    text: str  # what was measured
    chars: int
    gradients: GradientFlow
    context: ContextUse | None


def flow_command(targets: list[str | None], file: str | None, device: str,
                 options: FlowConfig, load: Load | None = None) -> list[RunFlow]:
    """Measure every run in ``targets`` (None: the newest run) on ``file`` (None: each
    run's own held-out split); torch's threads are the cores other work leaves free
    (``load``: measured since the command started), re-checked between runs."""
    checkpoints = [runfolder.open_checkpoint(t) for t in targets]  # all found, first
    names = [c.path.parent.name for c in checkpoints]
    dev = str(pick_device(device))
    governor = Governor(load or Load())
    out = []
    for c, name in zip(checkpoints, names, strict=True):
        governor.tick()
        text = eval_text(c, file)
        ids = text.windows[0][:options.max_chars]
        model = load_model(c, dev)
        # in float64 where the device has it: a vanishing gradient falls below float32's
        # range within a few dozen steps and would read as exactly 0
        wide = copy.deepcopy(model).double() if not dev.startswith("mps") else model
        grads = gradient_flow(wide, ids, options.max_distance, options.windows,
                              options.burn_in)
        ctx = (context_use(model, ids, options.max_context, options.positions)
               if options.context else None)
        m = c.config
        out.append(RunFlow(
            name if names.count(name) == 1 else str(c.path.parent), str(c.path), m.cell,
            f"{m.num_layers}x{m.hidden_size}", c.meta.get("train", {}).get("seq_len"),
            text.label, len(ids), grads, ctx))
    return out
