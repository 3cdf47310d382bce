"""Looking inside: ``neurons``, ``report``, ``info`` and ``list``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from charrnn.cli.common import OUTPUT, CheckpointOpt, err, one_checkpoint
from charrnn.cli.output import say
from charrnn.config import DEFAULT_ROOT, DEVICE_HELP, TrainConfig
from charrnn.safetext import dumps, shown

if TYPE_CHECKING:  # numpy loads with them: sample must choose its BLAS threads first
    from charrnn.inspect.runinfo import RunSummary, Section


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
    from charrnn.files import check_out
    from charrnn.threads import set_blas_threads

    set_blas_threads()  # the numpy twin runs it: as for sampling, before numpy loads
    from charrnn.inspect.neurons import neurons as rank
    from charrnn.runs import folder as runfolder
    from charrnn.score.texts import eval_text

    if html is not None:
        check_out(html)
    c = runfolder.open_checkpoint(checkpoint)
    text = eval_text(c, file)
    result = rank(c, text.ids, text.label, html, start, max_chars, top)
    say(f"{'unit':<8} {'r':>7}  feature   ({result.units:,} units over "
          f"{result.chars:,} characters)")
    for sc in result.ranked:
        say(f"{sc.name:<8} {sc.r:>+7.3f}  {sc.feature}")
    if html is not None:
        err(f"wrote {html}")


def report(
    runs: Annotated[list[str] | None, typer.Argument(
        metavar="RUN",
        help="Run folders (or checkpoints in them); -c adds one. Several: one page "
             "comparing them. Default: the newest run under checkpoints/.",
        show_default=False)] = None,
    checkpoint: CheckpointOpt = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", show_default=False,
                   help="Page to write. Default: report.html in the run folder; for "
                        "several runs compare.html here.")] = None,
    length: Annotated[int, typer.Option("--length", "-n", min=1, max=1_000_000,
                      help="Characters per sample (one run).")] = 300,
    seed: Annotated[int, typer.Option(help="Seed for the samples (one run).")] = 0,
    evaluate: Annotated[bool, typer.Option(
        "--eval/--no-eval", help="Several runs: score each best checkpoint on its held-out "
        "split, carried and in nanoGPT's windows of 256 (loads torch).")] = True,
    device: Annotated[str, typer.Option(help=DEVICE_HELP)] = TrainConfig.device,
) -> None:
    """Write a run's report page: loss curves, configuration, vocabulary and samples.

    Several runs: one page overlaying their curves (validation loss against step, time
    or characters seen; learning rate; gradient norm; share clipped), their
    configurations side by side with the differences marked, their figures and their
    previews at comparable points; the figures are also printed as a table.

    Examples:

        charrnn report

        charrnn report checkpoints/shakespeare -o shakespeare.html -n 500

        charrnn report -c checkpoints/shakespeare

        charrnn report checkpoints/rnn checkpoints/gru checkpoints/lstm -o cells.html
    """
    from charrnn.inspect.report import compare_report, run_report

    targets = list(dict.fromkeys([*(runs or []), *([checkpoint] if checkpoint else [])]))
    if len(targets) <= 1:
        err(f"wrote {run_report(targets[0] if targets else None, out, length, seed=seed)}")
        return
    page, table = compare_report(targets, out, evaluate, device)
    say(table)
    err(f"wrote {page}")


def info(
    target: Annotated[str | None, typer.Argument(
        metavar="CHECKPOINT", help="A .safetensors checkpoint or a run folder, or give it "
        "with -c. Default: the newest run.", show_default=False)] = None,
    checkpoint: CheckpointOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the metadata as JSON.")
                       ] = False,
) -> None:
    """Show what a checkpoint holds: model, vocabulary, training progress and versions.

    Examples:

        charrnn info

        charrnn info checkpoints/shakespeare/best.safetensors

        charrnn info -c checkpoints/shakespeare --json | jq .progress
    """
    from charrnn.inspect import runinfo
    from charrnn.runs import folder as runfolder

    c = runfolder.open_checkpoint(one_checkpoint(target, checkpoint))
    if as_json:
        say(dumps(c.meta, indent=1))
    else:
        print_info(runinfo.describe(c))


def list_(
    root: Annotated[Path, typer.Option(help="Folder to search for runs.")
                    ] = DEFAULT_ROOT,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """List the runs under checkpoints/ with their size, progress and best validation loss.

    Examples:

        charrnn list

        charrnn list --root /data/runs --json
    """
    from charrnn.inspect import runinfo

    runs = runinfo.list_runs(root)
    if as_json:
        for r in runs:
            say(dumps(r.as_dict()))
    elif runs:
        print_runs(runs)
    else:
        err(f"no runs under {root}/")


def print_info(sections: list[Section]) -> None:
    """A checkpoint's sections (``runinfo.describe``) as rich tables on stdout."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(highlight=False)
    for title, rows in sections:
        table = Table(title=title, title_justify="left", show_header=False, box=None,
                      padding=(0, 2, 0, 0), title_style="bold underline")
        table.add_column(style="bold")
        table.add_column(overflow="fold")
        for key, value in rows:  # Text: a value is never read as rich markup
            table.add_row(Text(shown(key)), Text(shown(value)))
        console.print(table)


def print_runs(runs: list[RunSummary]) -> None:
    """One table row per run on stdout."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from charrnn.inspect.runinfo import duration
    from charrnn.score.measures import bits

    table = Table(box=None, padding=(0, 2, 0, 0))
    for name in ("run", "cell", "size", "params", "steps", "chars seen", "time",
                 "best val (bits/char)"):
        table.add_column(name, justify="left" if name in ("run", "cell", "size") else "right")
    for r in runs:
        best = "n/a" if r.best_val_loss is None else f"{bits(r.best_val_loss):.3f}"
        cells = (str(r.path), r.cell, r.size, f"{r.params:,}", f"{r.steps:,}",
                 f"{r.chars_seen:,}", duration(r.elapsed), best)
        table.add_row(*(Text(shown(v)) for v in cells))
    Console(highlight=False).print(table)
