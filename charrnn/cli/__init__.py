"""The command line: every command registered here, in one place; each module parses its
options and calls the library.

torch is imported inside the commands that need it, so ``charrnn --help`` and shell
completion answer at once and ``charrnn sample`` (numpy only) starts fast.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer

from charrnn import __version__
from charrnn.cli import cache, evaluate, export, flow, inspect, sample, serve, train
from charrnn.cli.common import SAMPLING, err, from_options, with_controls
from charrnn.cli.output import StdoutClosed, StdoutFailed, Watched, quiet_stdout
from charrnn.errors import CharRNNError
from charrnn.train.options import TrainOptions

app = typer.Typer(
    name="charrnn",
    help="Train a character-level RNN language model on any text file and generate text.",
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        print(f"charrnn {__version__}")
        raise typer.Exit()


def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Train a character-level RNN language model on any text file and generate text."""


sample_command = with_controls(sample.sample, SAMPLING)
COMMANDS: dict[str, Callable[..., Any]] = {  # name -> command, in --help's order
    "train": from_options(TrainOptions, train.train),
    "sample": sample_command,
    "eval": evaluate.eval_,
    "neurons": inspect.neurons,
    "report": inspect.report,
    "gradients": flow.gradients,
    "info": inspect.info,
    "serve": serve.serve,
    "export": export.export,
    "list": inspect.list_,
    "cache": cache.cache_,
}
app.callback()(_root)
for _name, _command in COMMANDS.items():
    app.command(_name)(_command)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; every failure is one line on stderr and an exit status, never a trace."""
    try:  # recent Typer vendors its own copy of click
        from typer._click import exceptions as click_exc
    except ImportError:  # pragma: no cover - older Typer on top of click
        from click import exceptions as click_exc  # type: ignore[no-redef]

    real_stdout, sys.stdout = sys.stdout, Watched(sys.stdout)  # type: ignore[assignment]
    try:
        from charrnn.cli.fastpath import sample_options

        fast = sample_options(sample_command, sys.argv[1:] if argv is None else list(argv))
        if fast is not None:
            sample_command(**fast)
            rv = 0
        else:
            rv = app(args=argv, prog_name="charrnn", standalone_mode=False)
        sys.stdout.flush()  # a full disk or a closed pipe shows here, not at exit
        return rv if isinstance(rv, int) else 0
    except (BrokenPipeError, StdoutClosed):  # the reader went away (`| head`): a normal end
        quiet_stdout()
        return 0
    except StdoutFailed as e:  # > /dev/full
        quiet_stdout()
        err(f"error: {e}")
        return e.exit_code
    except typer.Exit as e:
        return e.exit_code
    except CharRNNError as e:
        err(f"error: {e}")
        return e.exit_code
    except click_exc.UsageError as e:
        cmd = e.ctx.command_path if e.ctx else "charrnn"
        err(f"error: {e.format_message()} (see '{cmd} --help')")
        return 2
    except click_exc.ClickException as e:
        err(f"error: {e.format_message()}")
        return e.exit_code
    except (typer.Abort, KeyboardInterrupt):  # typer's own click has no exceptions.Abort
        return 130
    except SystemExit as e:  # shell completion and --show-completion exit by themselves
        return e.code if isinstance(e.code, int) else int(e.code is not None)
    except Exception as e:  # a bug: still one line, with a way to see more
        if os.environ.get("CHARRNN_DEBUG"):
            raise
        err(f"internal error: {type(e).__name__}: {e} (set CHARRNN_DEBUG=1 for a traceback)")
        return 1
    finally:
        sys.stdout = real_stdout


def entry() -> None:
    sys.exit(main())
