"""``charrnn export``: a web page, an ES module folder, ONNX, a Hugging Face folder (export/)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from charrnn.cli.common import OUTPUT, CheckpointOpt, err, one_checkpoint


class Dtype(str, Enum):
    float16 = "float16"
    float32 = "float32"


def export(
    target: Annotated[str | None, typer.Argument(
        metavar="RUN", show_default=False,
        help="A run folder, a .safetensors checkpoint or an exported folder. Default: the "
             "newest run.")] = None,
    checkpoint: CheckpointOpt = None,
    web: Annotated[Path | None, typer.Option(
        "--web", metavar="PAGE", rich_help_panel=OUTPUT, show_default=False,
        help="One self-contained HTML page that generates in the browser (no network).")
        ] = None,
    web_dir: Annotated[Path | None, typer.Option(
        "--web-dir", metavar="DIR", rich_help_panel=OUTPUT, show_default=False,
        help="A folder for your own page: charrnn.js (ES module), model.json, weights.bin "
             "and index.html.")] = None,
    onnx: Annotated[Path | None, typer.Option(
        "--onnx", metavar="FILE", rich_help_panel=OUTPUT, show_default=False,
        help="One step of the model as ONNX: ids and state in, logits and new state out "
             "(needs the onnx extra).")] = None,
    hf: Annotated[Path | None, typer.Option(
        "--hf", metavar="DIR", rich_help_panel=OUTPUT, show_default=False,
        help="A folder for the Hugging Face Hub: model.safetensors, config.json, README.md "
             "model card.")] = None,
    dtype: Annotated[Dtype, typer.Option(
        "--dtype", rich_help_panel=OUTPUT,
        help="Number format of the web weights (--web, --web-dir): float16 halves the page.")
        ] = Dtype.float16,
) -> None:
    """Take a model anywhere: a web page, ONNX, a Hugging Face-ready folder.

    Give any of --web, --web-dir, --onnx and --hf; each is written whole or not at all
    (an earlier export of the same kind is replaced).

    Examples:

        charrnn export checkpoints/shakespeare --web shakespeare.html

        charrnn export --web-dir site/ --onnx model.onnx --hf hub/shakespeare
    """
    from charrnn.export.command import Targets
    from charrnn.export.command import export as run_export

    for line in run_export(one_checkpoint(target, checkpoint),
                           Targets(web, web_dir, onnx, hf, dtype.value)):
        err(line)
