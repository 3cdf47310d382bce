"""``charrnn eval``: loss, bits per character and perplexity, static and dynamic."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from charrnn.cli.common import ADAPT, OUTPUT, CheckpointOpt, err
from charrnn.cli.output import say
from charrnn.config import DEVICE_HELP, AdaptConfig, TrainConfig
from charrnn.errors import ConfigError
from charrnn.safetext import dumps


def eval_(
    file: Annotated[str | None, typer.Argument(
        help="Text to score. Default: the held-out split of the training corpus.",
        show_default=False)] = None,
    checkpoint: CheckpointOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    device: Annotated[str, typer.Option(help=DEVICE_HELP)] = TrainConfig.device,
    html: Annotated[Path | None, typer.Option(
        "--html", rich_help_panel=OUTPUT, show_default=False,
        help="Also write a self-contained HTML page: the text coloured by surprisal, with "
             "the top-5 predictions of each character on hover.")] = None,
    max_chars: Annotated[int, typer.Option(min=2, rich_help_panel=OUTPUT,
                         help="Characters of the text shown on the --html page.")] = 10_000,
    start: Annotated[int, typer.Option(min=0, rich_help_panel=OUTPUT,
                     help="Where the --html page's excerpt starts (in known characters).")
                     ] = 0,
    window: Annotated[int, typer.Option(
        "--window", min=0, metavar="N",
        help="Score in windows of N characters, each read from a fresh zero state, every "
             "position averaged: nanoGPT's protocol (N=256 as its shakespeare_char "
             "figures). 0 carries the state through the text.")] = 0,
    adapt: Annotated[bool, typer.Option("--adapt", rich_help_panel=ADAPT,
                     help="Also score with dynamic evaluation: the model keeps learning "
                          "from the text it has already scored.")] = False,
    adapt_segment: Annotated[int, typer.Option(min=1, rich_help_panel=ADAPT,
                             help="Characters per stream scored before each update.")
                             ] = AdaptConfig.segment,
    adapt_streams: Annotated[int, typer.Option(min=1, rich_help_panel=ADAPT,
                             help="Parallel streams through the text (faster; each "
                                  "update learns from all).")] = AdaptConfig.streams,
    adapt_lr: Annotated[float, typer.Option(min=0.0, rich_help_panel=ADAPT,
                        help="Step size, in units of the gradient's running RMS.")
                        ] = AdaptConfig.lr,
    adapt_decay: Annotated[float, typer.Option(min=0.0, max=1.0, rich_help_panel=ADAPT,
                           help="Pull back towards the trained weights per update.")
                           ] = AdaptConfig.decay,
) -> None:
    """Report loss (nats), bits per character and perplexity of a checkpoint on a text.

    Examples:

        charrnn eval notes.txt

        charrnn eval --json -c checkpoints/shakespeare

        charrnn eval notes.txt --html surprisal.html --max-chars 5000

        charrnn eval play.txt --adapt

        charrnn eval --window 256
    """
    from charrnn.threads import Load

    load = Load()  # the command starts: a first look at how busy the machine is
    from charrnn.files import check_out
    from charrnn.score import evaluate

    if window and adapt:
        raise ConfigError("--window and --adapt score differently; give one")
    if html is not None:
        check_out(html)
    config = AdaptConfig(segment=adapt_segment, streams=adapt_streams, lr=adapt_lr,
                         decay=adapt_decay) if adapt else None
    report = evaluate.eval_command(file, checkpoint, device, config, load, window)
    if html is not None:
        from charrnn.inspect import surprisal
        from charrnn.runs import checkpoint as ckpt
        from charrnn.score.texts import eval_text

        c = ckpt.inspect(report["checkpoint"])
        text = eval_text(c, file)
        err(f"wrote {surprisal.write(c, text.ids, text.label, html, report, start, max_chars)}")
    if as_json:
        say(dumps(report))
        return
    unknown = report["unknown_chars"]
    dyn = report.get("adapted")

    def row(name: str, key: str, fmt: str, unit: str = "") -> str:
        static = fmt.format(report[key]) + unit
        return f"{name:<13}{static:<19}adapted {fmt.format(dyn[key])}" if dyn else \
            f"{name:<13}{static}"

    lines = [
        f"checkpoint   {report['checkpoint']}",
        f"text         {report['text']} ({report['chars']:,} characters scored)",
        row("loss", "loss", "{:.4f}", " nats/char"),
        row("bits/char", "bits_per_char", "{:.4f}"),
        row("perplexity", "perplexity", "{:.3f}"),
    ]
    if window:
        lines.insert(2, f"protocol     windows of {window:,} characters, each read from a fresh "
                        "state, every position averaged (nanoGPT's)")
    if dyn:
        a = report["adapt"]
        lines.append(f"adapted      dynamic evaluation: segment {a['segment']}, {a['streams']} "
                     f"streams, lr {a['lr']:g}, decay {a['decay']:g} "
                     f"({report['adapt_seconds']:.1f} s)")
    if unknown:
        lines.append(f"unknown      {unknown:,} characters not in the vocabulary were skipped "
                     f"({dumps(report['unknown_distinct'])})")
    say("\n".join(lines))
