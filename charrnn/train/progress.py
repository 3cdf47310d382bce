"""Training progress on stderr: a tqdm bar on a terminal, one line per validation, the
samples previewed at each (charrnn.train.preview)."""

from __future__ import annotations

import sys
from typing import Any

from charrnn.safetext import shown
from charrnn.train.events import Callbacks, Progress


def log(text: str) -> None:
    from tqdm import tqdm

    tqdm.write(shown(text), file=sys.stderr)



def sparkline(values: list[float], width: int = 12) -> str:
    """The last ``width`` values as block characters, lowest to highest (terminal trend).

    Empty for fewer than two values, or when stderr cannot print the blocks."""
    encoding = (getattr(sys.stderr, "encoding", None) or "").lower().replace("-", "")
    if len(values) < 2 or encoding not in ("utf8", "utf16", "utf32"):
        return ""
    tail = values[-width:]
    lo, hi = min(tail), max(tail)
    blocks = "\u2581\u2582\u2583\u2584\u2585\u2586\u2587\u2588"
    return "".join(blocks[round((v - lo) / (hi - lo) * 7) if hi > lo else 0] for v in tail)


class ConsoleProgress(Callbacks):
    """tqdm bar on stderr (hidden when stderr is not a terminal) plus one line per eval."""

    def __init__(self) -> None:
        self.bar = None
        self.val = float("nan")
        self.history: list[float] = []  # validation losses, for the trend in each eval line

    def on_start(self, info: dict[str, Any]) -> None:
        from tqdm import tqdm

        threads = f", {info['threads']}" if info.get("threads") else ""
        log(f"device {info['device']} ({info['precision']}{threads}), "
            f"{info['steps_per_epoch']} steps per epoch")
        self.bar = tqdm(total=1000, file=sys.stderr, disable=None, leave=False,
                        bar_format="{l_bar}{bar}| {elapsed}<{remaining} {postfix}")

    def on_step(self, p: Progress) -> None:
        if self.bar is not None and not self.bar.disable:
            self.bar.n = int(p.fraction * 1000)
            self.bar.set_postfix_str(
                f"step {p.step} loss {p.train_loss:.3f} val {self.val:.3f} "
                f"{p.chars_per_s:,.0f} chars/s", refresh=False)
            self.bar.refresh()

    def on_eval(self, p: Progress, improved: bool) -> None:
        if p.val_loss is not None:
            self.val = p.val_loss
            self.history.append(p.val_loss)
        val = f"{p.val_loss:.4f}" if p.val_loss is not None else "n/a"
        trend = sparkline(self.history)
        log(f"step {p.step:>6} | epoch {p.epoch} | {p.elapsed:7.1f}s | train {p.train_loss:.4f}"
             f" | val {val}{' *' if improved else ''} | lr {p.lr:.2e} | "
             f"{p.chars_per_s:,.0f} chars/s" + (f" | {trend}" if trend else ""))

    def on_message(self, text: str) -> None:
        log(text)

    def on_preview(self, step: int, text: str) -> None:
        """On a terminal the sample as text, indented under its validation line;
        otherwise one line per preview (line breaks escaped), for logs and grep."""
        from charrnn.escapes import escape
        from charrnn.train.preview import PREVIEW_TEMPERATURE

        if self.bar is not None and not self.bar.disable:
            body = escape(text, keep="\n\t").replace("\n", "\n  | ")
            log(f"  preview at step {step} (temperature {PREVIEW_TEMPERATURE:g}):\n  | {body}")
        else:
            log(f"preview step {step}: {escape(text)}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
