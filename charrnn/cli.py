"""The command line: parse options, call the library, print results.

torch is imported inside the commands that need it, so ``charrnn --help`` and shell
completion answer at once and ``charrnn sample`` (numpy only) starts fast.
"""

from __future__ import annotations

import json
import os
import sys
import time
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from charrnn import __version__
from charrnn.errors import CharRNNError

app = typer.Typer(
    name="charrnn",
    help="Train a character-level RNN language model on any text file and generate text.",
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)

MODEL, OPTIM, BUDGET, CKPT, OUTPUT = "Model", "Optimization", "Budget", "Checkpoints", "Output"


class Cell(str, Enum):
    lstm = "lstm"
    gru = "gru"
    rnn = "rnn"


def _err(message: str) -> None:
    print(f"charrnn: {message}", file=sys.stderr, flush=True)


def _version(value: bool) -> None:
    if value:
        print(f"charrnn {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Train a character-level RNN language model on any text file and generate text."""


CheckpointOpt = Annotated[
    str | None,
    typer.Option("--checkpoint", "-c", rich_help_panel=CKPT,
                 help="A .safetensors checkpoint or a run folder (its best checkpoint). "
                      "Default: the newest run under checkpoints/."),
]


# --------------------------------------------------------------------------- train
@app.command()
def train(
    corpus: Annotated[str | None, typer.Argument(
        help="UTF-8 text file to train on. Default: Python's built-in help text.",
        show_default=False)] = None,
    cell: Annotated[Cell, typer.Option(help="Recurrent cell.", rich_help_panel=MODEL)
                    ] = Cell.lstm,
    layers: Annotated[int | None, typer.Option(min=1, rich_help_panel=MODEL,
                      help="Recurrent layers. Default: from corpus size.")] = None,
    hidden_size: Annotated[int | None, typer.Option(min=1, rich_help_panel=MODEL,
                           help="Units per layer. Default: from corpus size.")] = None,
    embed_size: Annotated[int, typer.Option(min=1, rich_help_panel=MODEL,
                          help="Character embedding size.")] = 64,
    dropout: Annotated[float | None, typer.Option(rich_help_panel=MODEL,
                       help="Dropout in [0, 1). Default: from corpus size.")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", "-b", min=1,
                          rich_help_panel=OPTIM, help="Parallel streams (default 32).")] = None,
    seq_len: Annotated[int | None, typer.Option("--seq-len", "-t", min=1, rich_help_panel=OPTIM,
                       help="Truncated-BPTT window in characters (default 128).")] = None,
    lr: Annotated[float, typer.Option(rich_help_panel=OPTIM, help="Peak learning rate.")] = 2e-3,
    weight_decay: Annotated[float, typer.Option(rich_help_panel=OPTIM)] = 0.01,
    grad_clip: Annotated[float, typer.Option(rich_help_panel=OPTIM,
                         help="Max gradient norm; 0 disables clipping.")] = 1.0,
    warmup: Annotated[int, typer.Option(min=0, rich_help_panel=OPTIM,
                      help="Warm-up steps.")] = 50,
    max_time: Annotated[str | None, typer.Option(rich_help_panel=BUDGET,
                        help="Wall-time budget, e.g. 90s, 10m, 2h. The learning rate reaches "
                             "its floor at the deadline. Default: 10m when no budget is given.",
                        show_default=False)] = None,
    max_steps: Annotated[int | None, typer.Option(min=1, rich_help_panel=BUDGET)] = None,
    epochs: Annotated[float | None, typer.Option(rich_help_panel=BUDGET)] = None,
    patience: Annotated[int, typer.Option(min=0, rich_help_panel=BUDGET,
                        help="Stop after this many validations without improvement; "
                             "0 never stops early.")] = 5,
    eval_every: Annotated[int, typer.Option(min=0, rich_help_panel=BUDGET,
                          help="Steps between validations; 0 chooses by time.")] = 0,
    val_fraction: Annotated[float, typer.Option(rich_help_panel=BUDGET,
                            help="Tail of the text held out for validation.")] = 0.1,
    val_max_chars: Annotated[int, typer.Option(min=0, rich_help_panel=BUDGET,
                             help="Held-out characters scored per validation (a fixed "
                                  "sample spread over the tail); 0 scores all.")] = 1_000_000,
    log_every: Annotated[int | None, typer.Option(min=1, rich_help_panel=OUTPUT,
                         help="Steps between train-loss lines in metrics.jsonl (default 20; "
                              "--resume keeps the run's).")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", rich_help_panel=CKPT,
                   help="Run folder. Default: checkpoints/<corpus name>.",
                   show_default=False)] = None,
    resume: Annotated[bool, typer.Option(rich_help_panel=CKPT,
                      help="Continue the run in the output folder from its latest "
                           "checkpoint.")] = False,
    force: Annotated[bool, typer.Option(rich_help_panel=CKPT,
                     help="Start afresh even if the output folder holds a run.")] = False,
    seed: Annotated[int, typer.Option()] = 1337,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")] = "auto",
    precision: Annotated[str, typer.Option(
        help="auto, fp32 or bf16. auto: bfloat16 autocast where the hardware runs it "
             "natively (recent GPUs, CPUs with AMX), else float32.")] = "auto",
    compile: Annotated[bool, typer.Option("--compile", help="torch.compile the model.")
                       ] = False,
) -> None:
    """Train a model on a text file, with progress on stderr and checkpoints in a run folder.

    Examples:

        charrnn train corpus.txt --max-time 10m

        charrnn train notes.txt --cell gru --hidden-size 256 -o checkpoints/notes-gru

        charrnn train corpus.txt --resume --max-time 30m
    """
    options = {**locals(), "cell": cell.value}
    from charrnn import runs

    try:
        result = runs.train_command(runs.TrainRequest(**options))
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    if result.reason == "interrupted":
        if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 speaks for all
            _err(f"interrupted; checkpoint saved in {result.run_dir}/ (continue with --resume)")
        raise typer.Exit(130)
    if result.reason == "diverged":
        raise typer.Exit(1)


# --------------------------------------------------------------------------- sample
@app.command()
def sample(
    checkpoint: CheckpointOpt = None,
    temp: Annotated[float, typer.Option("--temp", "--temperature", min=0.0,
                    help="Sampling temperature; 0 is greedy.")] = 1.0,
    prime: Annotated[str, typer.Option("--prime", "-p",
                     help="Text that warms the model up; printed first.")] = "",
    no_echo: Annotated[bool, typer.Option("--no-echo",
                       help="Do not print the prime before the sample.")] = False,
    length: Annotated[int, typer.Option("--length", "-n", min=0,
                      help="Characters to generate.")] = 1000,
    top_k: Annotated[int, typer.Option("--top-k", min=0,
                     help="Sample only among the k likeliest characters; 0 means all.")] = 0,
    seed: Annotated[int | None, typer.Option(help="Seed for reproducible output.")] = None,
) -> None:
    """Generate text from a checkpoint, streamed to stdout as it is produced.

    Examples:

        charrnn sample --temp 0.8

        charrnn sample -p "ROMEO:" -n 500 | ./my-script.sh
    """
    from charrnn.sample import SampleConfig, Sampler

    config = SampleConfig(length=length, temperature=temp, top_k=top_k, seed=seed)
    sampler = Sampler.load(checkpoint)
    chars = sampler.generate(prime, config)  # validates the prime before anything prints
    _stream(([] if no_echo else [prime]), chars)


def _stream(head: list[str], chars) -> None:
    """Write UTF-8 to stdout, flushing at line ends and every 50 ms; a closed pipe is fine."""
    out = sys.stdout.buffer
    sys.stdout.flush()
    last, buf, tail = time.monotonic(), "".join(head), ""
    try:
        for ch in chars:
            buf += ch
            now = time.monotonic()
            if ch == "\n" or now - last > 0.05:
                out.write(buf.encode("utf-8"))
                out.flush()
                tail, buf, last = buf[-1:], "", now
        if buf:
            out.write(buf.encode("utf-8"))
            tail = buf[-1:]
        if sys.stdout.isatty() and tail != "\n":
            out.write(b"\n")  # keep the shell prompt off the last line, terminals only
        out.flush()
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): that is a normal end, not an error.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise typer.Exit(0) from None


# --------------------------------------------------------------------------- eval
@app.command("eval")
def eval_(
    file: Annotated[str | None, typer.Argument(
        help="Text to score. Default: the held-out split of the training corpus.",
        show_default=False)] = None,
    checkpoint: CheckpointOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")] = "auto",
) -> None:
    """Report loss (nats), bits per character and perplexity of a checkpoint on a text.

    Examples:

        charrnn eval notes.txt

        charrnn eval --json -c checkpoints/shakespeare
    """
    from charrnn import runs

    report = runs.eval_command(file, checkpoint, device)
    if as_json:
        print(json.dumps(report))
        return
    unknown = report["unknown_chars"]
    lines = [
        f"checkpoint   {report['checkpoint']}",
        f"text         {report['text']} ({report['chars']:,} characters scored)",
        f"loss         {report['loss']:.4f} nats/char",
        f"bits/char    {report['bits_per_char']:.4f}",
        f"perplexity   {report['perplexity']:.3f}",
    ]
    if unknown:
        lines.append(f"unknown      {unknown:,} characters not in the vocabulary were skipped "
                     f"({json.dumps(report['unknown_distinct'], ensure_ascii=False)})")
    print("\n".join(lines))


# --------------------------------------------------------------------------- entry
def main(argv: list[str] | None = None) -> int:
    """Run the CLI; every failure is one line on stderr and an exit status, never a trace."""
    try:  # recent Typer vendors its own copy of click
        from typer._click import exceptions as click_exc
    except ImportError:  # pragma: no cover - older Typer on top of click
        from click import exceptions as click_exc

    try:
        rv = app(args=argv, prog_name="charrnn", standalone_mode=False)
        return rv if isinstance(rv, int) else 0
    except CharRNNError as e:
        _err(f"error: {e}")
        return e.exit_code
    except click_exc.UsageError as e:
        cmd = e.ctx.command_path if e.ctx else "charrnn"
        _err(f"error: {e.format_message()} (see '{cmd} --help')")
        return 2
    except click_exc.ClickException as e:
        _err(f"error: {e.format_message()}")
        return e.exit_code
    except (click_exc.Abort, KeyboardInterrupt):
        return 130
    except Exception as e:  # a bug: still one line, with a way to see more
        if os.environ.get("CHARRNN_DEBUG"):
            raise
        _err(f"internal error: {type(e).__name__}: {e} (set CHARRNN_DEBUG=1 for a traceback)")
        return 1


def entry() -> None:
    sys.exit(main())
