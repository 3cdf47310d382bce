"""``charrnn serve``: the OpenAI-compatible HTTP server (serve/)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from charrnn.cli.common import SERVING
from charrnn.config import ServeConfig
from charrnn.train.options import CKPT


def serve(
    checkpoint: Annotated[str | None, typer.Option(
        "--checkpoint", "-c", rich_help_panel=CKPT, show_default=False,
        help="Serve only this run folder or .safetensors file. Default: every run under "
             "--root.")] = None,
    root: Annotated[Path, typer.Option(rich_help_panel=CKPT,
                    help="Folder whose runs are served (by their path in it).")
                    ] = ServeConfig.root,
    host: Annotated[str, typer.Option(rich_help_panel=SERVING,
                    help="Address to bind; another than loopback without --api-key "
                         "warns.")] = ServeConfig.host,
    port: Annotated[int, typer.Option(min=0, max=65535, rich_help_panel=SERVING,
                    help="TCP port.")] = ServeConfig.port,
    api_key: Annotated[str | None, typer.Option(
        "--api-key", envvar="CHARRNN_API_KEY", rich_help_panel=SERVING, show_default=False,
        help="Require 'Authorization: Bearer KEY' on the API. Default: none (or "
             "$CHARRNN_API_KEY).")] = None,
    max_streams: Annotated[int, typer.Option(min=1, rich_help_panel=SERVING,
                           help="Streams generated at once; past this, 429 with "
                                "Retry-After.")] = ServeConfig.max_streams,
    max_chars: Annotated[int, typer.Option(min=1, rich_help_panel=SERVING,
                         help="Largest max_tokens (characters) a request may ask for.")
                         ] = ServeConfig.max_chars,
    grace: Annotated[float, typer.Option(min=0.0, rich_help_panel=SERVING,
                     help="Seconds streams in flight get to finish after SIGTERM.")
                     ] = ServeConfig.grace,
) -> None:
    """Serve models over HTTP: OpenAI-compatible /v1/completions, and a playground at /.

    All concurrent streams advance together, one batched step per character. Needs
    the serve extra: pip install 'charrnn\\[serve]'.

    Examples:

        charrnn serve

        charrnn serve -c checkpoints/shakespeare --port 8080 --api-key "$KEY"
    """
    from charrnn.threads import set_blas_threads

    if api_key is None and "CHARRNN_API_KEY" in os.environ:  # set but empty: Typer drops it
        api_key = os.environ["CHARRNN_API_KEY"]  # and ServeConfig refuses it (fail closed)

    set_blas_threads()  # as for sampling, before numpy loads (docs/serving.md)
    from charrnn.serve.runner import serve as run_server

    run_server(ServeConfig(target=checkpoint, root=root, host=host, port=port,
                           api_key=api_key, max_streams=max_streams, max_chars=max_chars,
                           grace=grace))
