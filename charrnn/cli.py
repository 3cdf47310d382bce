"""The command line: parse options, call the library, print results.

torch is imported inside the commands that need it, so ``charrnn --help`` and shell
completion answer at once and ``charrnn sample`` (numpy only) starts fast.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from charrnn import __version__
from charrnn.config import ModelConfig, TrainConfig
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
    corpus: Annotated[list[str] | None, typer.Argument(
        help="UTF-8 text files and folders to train on (a folder: every text file under "
             "it); '-' reads stdin. Default: Python's built-in help text.",
        show_default=False)] = None,
    cell: Annotated[Cell | None, typer.Option(
        help="Recurrent cell (default lstm; with --init-from the source's).",
        rich_help_panel=MODEL, show_default=False)] = None,
    layers: Annotated[int | None, typer.Option(min=1, rich_help_panel=MODEL,
                      help="Recurrent layers. Default: from corpus size.")] = None,
    hidden_size: Annotated[int | None, typer.Option(min=1, rich_help_panel=MODEL,
                           help="Units per layer. Default: from corpus size.")] = None,
    embed_size: Annotated[int | None, typer.Option(
        min=1, rich_help_panel=MODEL,
        help=f"Character embedding size (default {ModelConfig.embed_size}).")] = None,
    dropout: Annotated[float | None, typer.Option(rich_help_panel=MODEL,
                       help="Dropout in [0, 1). Default: from corpus size.")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", "-b", min=1,
                          rich_help_panel=OPTIM,
                          help=f"Parallel streams (default {TrainConfig.batch_size}).")] = None,
    seq_len: Annotated[int | None, typer.Option("--seq-len", "-t", min=1, rich_help_panel=OPTIM,
                       help="Truncated-BPTT window in characters "
                            f"(default {TrainConfig.seq_len}).")] = None,
    lr: Annotated[float | None, typer.Option(
        rich_help_panel=OPTIM, help=f"Peak learning rate (default {TrainConfig.lr:g}).")
        ] = None,
    weight_decay: Annotated[float, typer.Option(rich_help_panel=OPTIM)
                            ] = TrainConfig.weight_decay,
    grad_clip: Annotated[float, typer.Option(rich_help_panel=OPTIM,
                         help="Max gradient norm; 0 disables clipping.")] = TrainConfig.grad_clip,
    warmup: Annotated[int | None, typer.Option(
        min=0, rich_help_panel=OPTIM,
        help=f"Warm-up steps (default {TrainConfig.warmup_steps}; fine-tuning 20).")] = None,
    max_time: Annotated[str | None, typer.Option(rich_help_panel=BUDGET,
                        help="Wall-time budget, e.g. 90s, 10m, 2h. The learning rate reaches "
                             "its floor at the deadline. Default: 10m when no budget is given.",
                        show_default=False)] = None,
    max_steps: Annotated[int | None, typer.Option(min=1, rich_help_panel=BUDGET)] = None,
    epochs: Annotated[float | None, typer.Option(rich_help_panel=BUDGET)] = None,
    patience: Annotated[int | None, typer.Option(min=0, rich_help_panel=BUDGET,
                        help="Stop after this many validations without improvement; "
                             f"0 never stops early. Default: {TrainConfig.patience}, or "
                             "the resumed run's own.", show_default=False)] = None,
    eval_every: Annotated[int, typer.Option(min=0, rich_help_panel=BUDGET,
                          help="Steps between validations; 0 chooses by time.")] = 0,
    val_fraction: Annotated[float, typer.Option(rich_help_panel=BUDGET,
                            help="Tail of the text held out for validation.")
                            ] = TrainConfig.val_fraction,
    val_max_chars: Annotated[int, typer.Option(min=0, rich_help_panel=BUDGET,
                             help="Held-out characters scored per validation (a fixed "
                                  "sample spread over the tail); 0 scores all.")
                             ] = TrainConfig.val_max_chars,
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
    seed: Annotated[int, typer.Option()] = TrainConfig.seed,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")] = "auto",
    precision: Annotated[str, typer.Option(
        help="auto, fp32 or bf16. auto: bfloat16 autocast where the hardware runs it "
             "natively (recent GPUs, CPUs with AMX or AVX-512 BF16), else float32.")] = "auto",
    compile: Annotated[bool, typer.Option("--compile", help="torch.compile the model.")
                       ] = False,
    file_separator: Annotated[str, typer.Option(
        "--file-separator", help="Put between the files of several inputs, after each "
        "file's final newline (escapes \\n, \\t, \\0, \\\\). Default: a blank line.")
        ] = "\\n",
    verbose: Annotated[bool, typer.Option("--verbose", "-v",
                       help="List every skipped file.")] = False,
    init_from: Annotated[str | None, typer.Option(
        "--init-from", rich_help_panel=CKPT, show_default=False,
        help="Fine-tune: start from this run's (or checkpoint's) weights, in a new run "
             "folder, with its architecture; new characters grow the vocabulary.")] = None,
) -> None:
    """Train a model on a text file, with progress on stderr and checkpoints in a run folder.

    Examples:

        charrnn train corpus.txt --max-time 10m

        charrnn train notes.txt --cell gru --hidden-size 256 -o checkpoints/notes-gru

        charrnn train corpus.txt --resume --max-time 30m

        charrnn train notes/ more.txt -o checkpoints/notes

        git log -p | charrnn train - -o checkpoints/gitlog

        charrnn train letters.txt --init-from checkpoints/novel
    """
    options = {**locals(), "cell": cell.value if cell else None,
               "file_separator": _unescape(file_separator)}
    from charrnn import runs

    try:
        result = runs.train_command(runs.TrainRequest(**options))
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    if result.reason == "interrupted":
        if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 speaks for all
            how = "terminated" if result.stop_signal == signal.SIGTERM else "interrupted"
            _err(f"{how}; checkpoint saved in {result.run_dir}/ (continue with --resume)"
                 if result.saved else f"{how} before the first step; nothing saved")
        raise typer.Exit(128 + (result.stop_signal or signal.SIGINT))
    if result.reason == "diverged":
        raise typer.Exit(1)


# --------------------------------------------------------------------------- sample
SAMPLING = "Sampling"


@app.command()
def sample(
    checkpoint: CheckpointOpt = None,
    temp: Annotated[float, typer.Option("--temp", "--temperature", min=0.0,
                    rich_help_panel=SAMPLING, help="Sampling temperature; 0 is greedy.")
                    ] = 1.0,
    top_k: Annotated[int, typer.Option("--top-k", min=0, rich_help_panel=SAMPLING,
                     help="Sample only among the k likeliest characters; 0 means all.")] = 0,
    top_p: Annotated[float, typer.Option("--top-p", min=0.0, max=1.0,
                     rich_help_panel=SAMPLING,
                     help="Nucleus sampling: only the fewest likeliest characters whose "
                          "probability adds up to this; 1 means all.")] = 1.0,
    seed: Annotated[int | None, typer.Option("--seed", min=0, rich_help_panel=SAMPLING,
                    help="Same seed, same text. With --num-samples, sample i uses "
                         "seed+i. Default: a fresh one (shown by --jsonl).",
                    show_default=False)] = None,
    length: Annotated[int, typer.Option("--length", "-n", min=0, rich_help_panel=SAMPLING,
                      help="Characters to generate (at most, with --stop).")] = 1000,
    prime: Annotated[str, typer.Option("--prime", "-p", rich_help_panel=SAMPLING,
                     help="Text that warms the model up; '-' reads it from stdin.")] = "",
    drop_unknown: Annotated[bool, typer.Option("--drop-unknown", rich_help_panel=SAMPLING,
                            help="Remove prime characters the model never saw "
                                 "(default: refuse, naming them).")] = False,
    stop: Annotated[list[str] | None, typer.Option(
        "--stop", rich_help_panel=SAMPLING, show_default=False,
        help="End a sample right after it produces this text (printed); repeatable. "
             "Escapes \\n, \\t, \\0, \\\\ are understood: --stop '\\n\\n' "
             "ends at a blank line.")] = None,
    num_samples: Annotated[int, typer.Option("--num-samples", min=1, rich_help_panel=OUTPUT,
                           help="Independent samples, generated together in one "
                                "batch.")] = 1,
    echo: Annotated[bool, typer.Option("--echo/--no-echo", rich_help_panel=OUTPUT,
                    help="Print the prime before each sample.")] = True,
    separator: Annotated[str, typer.Option("--separator", rich_help_panel=OUTPUT,
                         help="Printed between samples (escapes as for --stop; '\\0' "
                              "suits xargs -0).")] = "\\n---\\n",
    jsonl: Annotated[bool, typer.Option("--jsonl", rich_help_panel=OUTPUT,
                     help="One JSON object per sample and line: index, seed, text, "
                          "stopped, and the settings.")] = False,
) -> None:
    """Generate text from a checkpoint, streamed to stdout as it is produced.

    Only the samples go to stdout; a closed pipe ends quietly (exit 0).

    Examples:

        charrnn sample --temp 0.8 --seed 1

        charrnn sample -p "ROMEO:" -n 500 --stop '\\n\\n' | ./my-script.sh

        charrnn sample --num-samples 8 --jsonl -n 200 | jq -r .text
    """
    threads = {"OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"}
    if "numpy" not in sys.modules and not threads & set(os.environ):
        # Set before numpy loads; the user's own setting wins (docs/sampling.md).
        os.environ["OPENBLAS_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(
            _sampling_threads())
    from charrnn import sample as smp

    stops = tuple(_unescape(s) for s in stop or ())
    config = smp.SampleConfig(length=length, temperature=temp, top_k=top_k, top_p=top_p,
                              seed=smp.fresh_seed() if seed is None else seed, stop=stops,
                              num_samples=num_samples)
    sampler = smp.Sampler.load(checkpoint)  # a missing checkpoint fails before stdin waits
    if prime == "-":
        from charrnn.text import decode_utf8

        prime = decode_utf8(sys.stdin.buffer.read(), "stdin")
    prime, dropped = sampler.clean_prime(prime, drop_unknown)
    if dropped:
        _err(f"warning: dropped prime characters the model never saw: {dropped!r}")
    events = sampler.stream(prime, config)
    if jsonl:
        fields = {"prime": prime, "temperature": temp, "top_k": top_k, "top_p": top_p,
                  "length": length, "stop": list(stops),
                  "checkpoint": str(sampler.checkpoint.path)}
        _stream(smp.render_jsonl(events, num_samples, fields, config.seed))
    else:
        _stream(smp.render(events, num_samples, prime if echo else "", _unescape(separator)),
                end_line=True)


_LOADAVG = Path("/proc/loadavg")  # Linux; its 4th field counts runnable threads now


def _sampling_threads() -> int:
    """BLAS threads for sampling: 2 while another core is idle, else 1.

    A second thread makes a step of a 2x384 or larger model about 1.7x faster (the
    weights are read by two cores) with bit-identical results, but when the cores are
    busy every step waits for a descheduled thread: a 2x512 step fell from 1,900 to 55
    per second. So it is used only if fewer threads are runnable right now (this one
    included) than we have cores; a load average would lag, and count our own loop.
    """
    affinity = getattr(os, "sched_getaffinity", None)  # the cores we may run on
    cores = len(affinity(0)) if affinity else os.cpu_count() or 1
    try:
        running = int(_LOADAVG.read_text().split()[3].partition("/")[0])
    except (OSError, ValueError, IndexError):  # no /proc: stay on the safe side
        return 1
    return 2 if running < cores else 1


_NUMBER = {int: r"[+-]?\d+", float: r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?"}


def _sample_fast_path(args: list[str]) -> dict | None:
    """The sample command's options parsed without Typer, or None to let Typer do it.

    Typer (0.29) builds a pydantic validator for each option before a command runs:
    about 70 ms of imports, a third of ``charrnn sample``'s start-up. Here plain,
    valid options are read from the same declarations (``sample``'s signature); help,
    anything unknown, malformed or out of range returns None, so Typer parses it and
    reports any error exactly as for the other commands.
    """
    if args[:1] != ["sample"]:
        return None
    import re
    from typing import get_args

    from typer.utils import get_params_from_function

    params = get_params_from_function(sample)
    values = {name: p.default.default for name, p in params.items()}
    options = {}  # option string -> (parameter name, flag value or None)
    for name, p in params.items():
        for decl in p.default.param_decls:
            on, _, off = decl.partition("/")
            flag = p.annotation is bool
            options[on] = (name, True if flag else None)
            if off:
                options[off] = (name, False)
    rest = args[1:]
    while rest:
        arg, rest = rest[0], rest[1:]
        opt, eq, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if opt not in options and arg[:2] in options and not arg.startswith("--"):
            opt, eq, value = arg[:2], "=", arg[2:]  # -n500
        if opt not in options:
            return None
        name, flag = options[opt]
        if flag is not None:
            if eq:
                return None
            values[name] = flag
            continue
        if not eq:
            if not rest:
                return None
            value, rest = rest[0], rest[1:]
        kind = next((t for t in (params[name].annotation, *get_args(params[name].annotation))
                     if t in (int, float, str, list[str])), None)
        if kind in _NUMBER:
            if not re.fullmatch(_NUMBER[kind], value):
                return None
            number, info = kind(value), params[name].default
            if (info.min is not None and number < info.min) or (
                    info.max is not None and number > info.max):
                return None
            values[name] = number
        elif kind is str:
            values[name] = value
        elif kind == list[str]:
            values[name] = [*(values[name] or ()), value]
        else:
            return None
    return values


_ESCAPES = {"n": "\n", "t": "\t", "0": "\0", "\\": "\\"}


def _unescape(text: str) -> str:
    """Turn \\n, \\t, \\0 and \\\\ into the characters; leave other backslashes alone."""
    import re

    return re.sub(r"\\([nt0\\])", lambda m: _ESCAPES[m[1]], text)


def _stream(pieces, end_line: bool = False) -> None:
    """Write text to stdout as UTF-8, flushing the first piece at once, then at line ends
    and every 50 ms; a closed pipe is a normal end. ``end_line``: on a terminal, finish
    with a newline so the shell prompt starts on a fresh line."""
    out = sys.stdout.buffer
    sys.stdout.flush()
    last, buf, tail = float("-inf"), "", ""
    try:
        for piece in pieces:
            buf += piece
            now = time.monotonic()
            if buf and (now - last > 0.05 or "\n" in piece):
                out.write(buf.encode("utf-8"))
                out.flush()
                tail, buf, last = buf[-1:] or tail, "", now
        if buf:
            out.write(buf.encode("utf-8"))
            tail = buf[-1:]
        if end_line and tail != "\n" and sys.stdout.isatty():
            out.write(b"\n")
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
    html: Annotated[Path | None, typer.Option(
        "--html", rich_help_panel=OUTPUT, show_default=False,
        help="Also write a self-contained HTML page: the text coloured by surprisal, with "
             "the top-5 predictions of each character on hover.")] = None,
    max_chars: Annotated[int, typer.Option(min=2, rich_help_panel=OUTPUT,
                         help="Characters of the text shown on the --html page.")] = 10_000,
    start: Annotated[int, typer.Option(min=0, rich_help_panel=OUTPUT,
                     help="Where the --html page's excerpt starts (in known characters).")
                     ] = 0,
) -> None:
    """Report loss (nats), bits per character and perplexity of a checkpoint on a text.

    Examples:

        charrnn eval notes.txt

        charrnn eval --json -c checkpoints/shakespeare

        charrnn eval notes.txt --html surprisal.html --max-chars 5000
    """
    from charrnn import pages, runs

    if html is not None:
        pages.check_out(html)
    report = runs.eval_command(file, checkpoint, device)
    if html is not None:
        from charrnn import checkpoint as ckpt

        c = ckpt.inspect(report["checkpoint"])
        ids, _, label = runs.eval_ids(c, file)
        _err(f"wrote {pages.surprisal_html(c, ids, label, html, report, start, max_chars)}")
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


# --------------------------------------------------------------------------- neurons
@app.command()
def neurons(
    file: Annotated[str | None, typer.Argument(
        help="Text to run the model over. Default: the held-out split of the training corpus.",
        show_default=False)] = None,
    checkpoint: CheckpointOpt = None,
    html: Annotated[Path | None, typer.Option(
        "--html", rich_help_panel=OUTPUT, show_default=False,
        help="Write a self-contained HTML page: the text coloured by each ranked unit.")
        ] = None,
    top: Annotated[int, typer.Option("--top", min=1, rich_help_panel=OUTPUT,
                   help="Units to rank (at least the 3 best for every feature).")] = 24,
    max_chars: Annotated[int, typer.Option(min=2, rich_help_panel=OUTPUT,
                         help="Characters of the text to analyse and show.")] = 4000,
    start: Annotated[int, typer.Option(min=0, rich_help_panel=OUTPUT,
                     help="Where the excerpt starts (in known characters).")] = 0,
) -> None:
    """Find hidden units that track structure (quotes, brackets, position in line, words).

    Prints the units (h per layer, LSTM cell state c) most correlated with text features.

    --html writes a page that colours the text by any of them.

    Examples:

        charrnn neurons --html cells.html

        charrnn neurons play.txt -c checkpoints/shakespeare --top 40
    """
    from charrnn import checkpoint as ckpt
    from charrnn import pages, runs

    if html is not None:
        pages.check_out(html)
    c = ckpt.inspect(ckpt.resolve(checkpoint))
    ids, _, label = runs.eval_ids(c, file)
    result = pages.neurons(c, ids, label, html, start, max_chars, top)
    print(f"{'unit':<8} {'r':>7}  feature   ({result.units:,} units over "
          f"{result.chars:,} characters)")
    for sc in result.ranked:
        print(f"{sc.name:<8} {sc.r:>+7.3f}  {sc.feature}")
    if html is not None:
        _err(f"wrote {html}")


# --------------------------------------------------------------------------- report
@app.command()
def report(
    run: Annotated[str | None, typer.Argument(
        help="Run folder (or a checkpoint in it). Default: the newest run under checkpoints/.",
        show_default=False)] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", show_default=False,
                   help="Page to write. Default: report.html in the run folder.")] = None,
    length: Annotated[int, typer.Option("--length", "-n", min=1,
                      help="Characters per sample.")] = 300,
    seed: Annotated[int, typer.Option(help="Seed for the samples.")] = 0,
) -> None:
    """Write a run's report page: loss curves, configuration, vocabulary and samples.

    Examples:

        charrnn report

        charrnn report checkpoints/shakespeare -o shakespeare.html -n 500
    """
    from charrnn import pages

    _err(f"wrote {pages.run_report(run, out, length, seed=seed)}")


# --------------------------------------------------------------------------- info
@app.command()
def info(
    checkpoint: Annotated[str | None, typer.Argument(
        help="A .safetensors checkpoint or a run folder. Default: the newest run.",
        show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the metadata as JSON.")
                       ] = False,
) -> None:
    """Show what a checkpoint holds: model, vocabulary, training progress and versions.

    Examples:

        charrnn info

        charrnn info checkpoints/shakespeare/best.safetensors

        charrnn info --json | jq .progress
    """
    from charrnn import catalog
    from charrnn import checkpoint as ckpt

    c = ckpt.inspect(ckpt.resolve(checkpoint))
    if as_json:
        print(json.dumps(c.meta, ensure_ascii=False, indent=1))
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(highlight=False)
    for title, rows in catalog.describe(c):
        table = Table(title=title, title_justify="left", show_header=False, box=None,
                      padding=(0, 2, 0, 0), title_style="bold underline")
        table.add_column(style="bold")
        table.add_column(overflow="fold")
        for key, value in rows:  # Text: a value is never read as rich markup
            table.add_row(Text(key), Text(value))
        console.print(table)


# --------------------------------------------------------------------------- list
@app.command("list")
def list_(
    root: Annotated[Path, typer.Option(help="Folder to search for runs.")
                    ] = Path("checkpoints"),
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """List the runs under checkpoints/ with their size, progress and best validation loss.

    Examples:

        charrnn list

        charrnn list --root /data/runs --json
    """
    from charrnn import catalog

    runs = catalog.list_runs(root)
    if as_json:
        for r in runs:
            print(json.dumps(r.as_dict(), ensure_ascii=False))
        return
    if not runs:
        _err(f"no runs under {root}/")
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, padding=(0, 2, 0, 0))
    for name in ("run", "cell", "size", "params", "steps", "chars seen", "time",
                 "best val (bits/char)"):
        table.add_column(name, justify="left" if name in ("run", "cell", "size") else "right")
    for r in runs:
        best = "n/a" if r.best_val_loss is None else f"{r.best_val_loss / 0.6931471805599453:.3f}"
        table.add_row(*map(Text, (str(r.path), r.cell, r.size, f"{r.params:,}", f"{r.steps:,}",
                                  f"{r.chars_seen:,}", catalog.duration(r.elapsed), best)))
    Console(highlight=False).print(table)


# --------------------------------------------------------------------------- cache
@app.command("cache")
def cache_(
    prune: Annotated[bool, typer.Option("--prune", help="Delete entries whose source is "
                     "gone or changed, then the least recently used above the cap.")] = False,
    clear: Annotated[bool, typer.Option("--clear", help="Delete every entry.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """List the corpus cache (encoded texts, rebuilt when needed; deleting is always safe).

    The cache is pruned after every new encoding and kept under $CHARRNN_CACHE_MAX
    (default 10G).

    Examples:

        charrnn cache

        charrnn cache --prune

        charrnn cache --clear
    """
    from charrnn import cachectl
    from charrnn.cache import cache_root

    if prune or clear:
        gone = cachectl.clear() if clear else cachectl.prune()
        _err(f"removed {len(gone)} entries ({cachectl.human(sum(e.size for e in gone))}) "
             f"from {cache_root()}/")
        return
    found = cachectl.entries()
    if as_json:
        for e in found:
            print(json.dumps(e.as_dict(), ensure_ascii=False))
        return
    for e in reversed(found):  # most recently used first
        used = time.strftime("%Y-%m-%d %H:%M", time.localtime(e.used))
        print(f"{cachectl.human(e.size):>10}  {e.status:<7}  {used}  {e.source}")
    print(f"{cachectl.human(sum(e.size for e in found)):>10}  total in {len(found)} entries "
          f"under {cache_root()}/ (cap {cachectl.human(cachectl.cap_bytes())})")


# --------------------------------------------------------------------------- entry
def main(argv: list[str] | None = None) -> int:
    """Run the CLI; every failure is one line on stderr and an exit status, never a trace."""
    try:  # recent Typer vendors its own copy of click
        from typer._click import exceptions as click_exc
    except ImportError:  # pragma: no cover - older Typer on top of click
        from click import exceptions as click_exc

    try:
        fast = _sample_fast_path(sys.argv[1:] if argv is None else list(argv))
        if fast is not None:
            sample(**fast)
            return 0
        rv = app(args=argv, prog_name="charrnn", standalone_mode=False)
        return rv if isinstance(rv, int) else 0
    except typer.Exit as e:
        return e.exit_code
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
    except (typer.Abort, KeyboardInterrupt):  # typer's own click has no exceptions.Abort
        return 130
    except SystemExit as e:  # shell completion and --show-completion exit by themselves
        return e.code if isinstance(e.code, int) else int(e.code is not None)
    except Exception as e:  # a bug: still one line, with a way to see more
        if os.environ.get("CHARRNN_DEBUG"):
            raise
        _err(f"internal error: {type(e).__name__}: {e} (set CHARRNN_DEBUG=1 for a traceback)")
        return 1


def entry() -> None:
    sys.exit(main())
