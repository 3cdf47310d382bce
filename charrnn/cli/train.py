"""``charrnn train``: its options come from ``TrainOptions`` (train/options.py)."""

from __future__ import annotations

import os
import signal

import typer

from charrnn.cli.common import err
from charrnn.train.options import TrainOptions


def train(opts: TrainOptions) -> None:
    """Train a model on a text file, with progress on stderr and checkpoints in a run folder.

    Examples:

        charrnn train corpus.txt --max-time 10m

        charrnn train notes.txt --cell gru --hidden-size 256 -o checkpoints/notes-gru

        charrnn train corpus.txt --resume --max-time 30m

        charrnn train notes/ more.txt -o checkpoints/notes

        git log -p | charrnn train - -o checkpoints/gitlog

        charrnn train letters.txt --init-from checkpoints/novel
    """
    from charrnn.threads import Load

    load = Load()  # a first look at how busy the machine is, measured while torch loads
    from charrnn.train import command as training

    try:
        result = training.train_command(opts, load)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    if result.reason == "interrupted":
        if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 speaks for all
            how = ("interrupted" if result.stop_signal in (0, signal.SIGINT) else
                   "terminated")
            err(f"{how}; checkpoint saved in {result.run_dir}/ (continue with --resume)"
                 if result.saved else f"{how} before the first step; nothing saved")
        raise typer.Exit(128 + (result.stop_signal or signal.SIGINT))
    if result.reason == "diverged":
        raise typer.Exit(1)
