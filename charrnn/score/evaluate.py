"""The eval command's work: a checkpoint's loss on a text, static and (``--adapt``)
dynamically evaluated, as one report."""

from __future__ import annotations

from typing import Any

import numpy as np

from charrnn.config import AdaptConfig
from charrnn.model.device import Governor, pick_device
from charrnn.model.network import load_model
from charrnn.runs import folder as runfolder
from charrnn.score.adapt import score_adaptive
from charrnn.score.context import windowed_score
from charrnn.score.loss import score_ids
from charrnn.score.measures import Score
from charrnn.score.texts import eval_text
from charrnn.threads import Load


def eval_command(file: str | None, target: str | None, device: str,
                 adapt: AdaptConfig | None = None, load: Load | None = None,
                 window: int = 0) -> dict[str, Any]:
    """Score a text (``score.texts.eval_text``) with a checkpoint: the report eval prints,
    with the adapted figures beside the static ones when ``adapt`` is given.

    ``window``: score in windows of that many characters, each from a fresh state
    (nanoGPT's protocol, ``score.context.windowed_score``); 0 carries the state.

    ``load``: how busy the machine has been since the command started; torch's threads
    are the cores other work leaves free, re-checked as the scoring goes on."""
    c = runfolder.open_checkpoint(target)
    text = eval_text(c, file)
    model = load_model(c, str(pick_device(device)))
    tick = Governor(load or Load()).tick
    score: Score
    if window:
        scores = [windowed_score(model, w, window) for w in text.windows]
        score = Score(sum(s.nats for s in scores), sum(s.chars for s in scores), text.unknown)
    elif adapt is None:
        scores = [score_ids(model, w, tick=tick) for w in text.windows]
        score = Score(sum(s.nats for s in scores), sum(s.chars for s in scores), text.unknown)
    else:
        score = score_adaptive(model, [np.asarray(w) for w in text.windows], adapt, tick)
        if score.static is not None:
            score.static.unknown = text.unknown
    return {"checkpoint": str(c.path), "text": text.described, **score.as_dict(),
            **({"window": window} if window else {})}


def held_out_losses(target: str, device: str, window: int) -> tuple[float, float]:
    """A checkpoint's loss on its held-out split (as eval scores it, the state carried),
    and in windows of ``window`` characters each from a fresh state: the text and the
    model read once for both."""
    c = runfolder.open_checkpoint(target)
    text = eval_text(c, None)
    model = load_model(c, str(pick_device(device)))

    def total(scores: list[Score]) -> float:
        return Score(sum(s.nats for s in scores), sum(s.chars for s in scores)).loss

    return (total([score_ids(model, w) for w in text.windows]),
            total([windowed_score(model, w, window) for w in text.windows]))
