"""``charrnn gradients``: gradient flow through time and the context a model uses."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from charrnn.cli.common import OUTPUT, err
from charrnn.cli.output import say
from charrnn.config import DEVICE_HELP, FlowConfig, TrainConfig
from charrnn.train.options import CKPT

MEASURE = "Measurement"


def gradients(
    file: Annotated[str | None, typer.Argument(
        help="Text to measure on. Default: each run's held-out split.",
        show_default=False)] = None,
    checkpoint: Annotated[list[str] | None, typer.Option(
        "--checkpoint", "-c", rich_help_panel=CKPT, show_default=False,
        help="A run folder or .safetensors checkpoint; repeat to overlay several runs. "
             "Default: the newest run under checkpoints/.")] = None,
    html: Annotated[Path | None, typer.Option(
        "--html", rich_help_panel=OUTPUT, show_default=False,
        help="Also write a self-contained page: both measurements as charts, runs "
             "overlaid.")] = None,
    max_distance: Annotated[int, typer.Option(
        "--max-distance", "-k", min=1, rich_help_panel=MEASURE,
        help="K: gradients with respect to the state k = 0..K characters back.")
        ] = FlowConfig.max_distance,
    windows: Annotated[int, typer.Option(
        min=1, rich_help_panel=MEASURE,
        help="Windows of the text the gradient norms are averaged over.")
        ] = FlowConfig.windows,
    context: Annotated[bool, typer.Option(
        "--context/--no-context", rich_help_panel=MEASURE,
        help="Also measure the loss with the state reset k = 1, 2, 4, ... characters "
             "before each scored character.")] = FlowConfig.context,
    max_context: Annotated[int, typer.Option(
        min=1, rich_help_panel=MEASURE, help="The largest k of the context measurement.")
        ] = FlowConfig.max_context,
    positions: Annotated[int, typer.Option(
        min=1, rich_help_panel=MEASURE,
        help="Positions scored for every k of the context measurement.")
        ] = FlowConfig.positions,
    max_chars: Annotated[int, typer.Option(
        min=2, rich_help_panel=MEASURE,
        help="Characters of the text to measure on, from its start.")
        ] = FlowConfig.max_chars,
    device: Annotated[str, typer.Option(help=DEVICE_HELP)] = TrainConfig.device,
) -> None:
    """Show how gradients flow back through time and how far back a model looks.

    Prints the mean norm of the gradient of the loss at a character with respect to each
    layer's state k characters earlier (k = 0..K), and the loss with the state reset k
    characters before each scored character. Give -c several times to compare runs
    (e.g. --cell rnn, gru and lstm trained alike).

    Examples:

        charrnn gradients

        charrnn gradients -c checkpoints/rnn -c checkpoints/gru -c checkpoints/lstm --html flow.html
    """
    from charrnn.threads import Load

    load = Load()  # a first look at how busy the machine is, measured while torch loads
    from charrnn.files import check_out

    if html is not None:
        check_out(html)
    from charrnn.inspect import flowpage
    from charrnn.score.flow import flow_command

    options = FlowConfig(max_distance=max_distance, windows=windows, context=context,
                          max_context=max_context, positions=positions, max_chars=max_chars)
    runs = flow_command(list(checkpoint) if checkpoint else [None], file, device, options,
                        load)
    say(flowpage.text_report(runs))
    if html is not None:
        err(f"wrote {flowpage.write(runs, html)}")
