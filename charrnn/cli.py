"""The command line: parse options, call the library, print results.

torch is imported inside the commands that need it, so ``charrnn --help`` and shell
completion answer at once and ``charrnn sample`` (numpy only) starts fast.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from charrnn import __version__
from charrnn.config import DEVICE_HELP, AdaptConfig, TrainConfig
from charrnn.errors import CharRNNError
from charrnn.generate.decoding import CONTROLS, Decoding, SampleConfig
from charrnn.novelty.filter import DEFAULT_MIN_COPY, DEFAULT_TRIES
from charrnn.train.options import CKPT, OUTPUT, TrainOptions

app = typer.Typer(
    name="charrnn",
    help="Train a character-level RNN language model on any text file and generate text.",
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)

ADAPT = "Dynamic evaluation"


def err(message: str) -> None:
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
def _from_options(cls: type, func: Callable[[Any], None]) -> Callable[..., None]:
    """A Typer command whose parameters are the fields of the options dataclass ``cls``
    (see charrnn.train.options), calling ``func`` with an instance of it."""
    import inspect
    from dataclasses import MISSING, fields
    from typing import get_type_hints

    hints, params = get_type_hints(cls), []
    for f in fields(cls):
        m, annotation, default = f.metadata["cli"], hints[f.name], f.default
        assert default is not MISSING
        if m["choices"]:  # an Enum, so Typer lists the choices
            choices = Enum(f.name.title(), {c: c for c in m["choices"]}, type=str)  # type: ignore[misc]
            annotation = choices if default is not None else choices | None
            default = default if default is None else choices(default)
        if m["argument"]:
            info = typer.Argument(help=m["help"], show_default=m["show_default"])
        else:
            info = typer.Option(*m["flags"], help=m["help"], rich_help_panel=m["panel"],
                                min=m["min"], max=m["max"], show_default=m["show_default"])
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY,
                                        default=default, annotation=Annotated[annotation, info]))

    def command(**values: Any) -> None:
        func(cls(**{k: v.value if isinstance(v, Enum) else v for k, v in values.items()}))

    command.__name__, command.__doc__ = func.__name__, func.__doc__
    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    return command


def with_controls(func: Callable[..., None], panel: str) -> Callable[..., None]:
    """``func`` with its ``decoding`` parameter offered as one option per control (see
    charrnn.generate.decoding), called with the ``Decoding`` they make."""
    import inspect
    from dataclasses import fields
    from functools import wraps
    from typing import get_type_hints

    def param(f: Any) -> inspect.Parameter:
        s = f.metadata["spec"]
        info = typer.Option(*s.flags, help=s.help, rich_help_panel=panel, min=s.min, max=s.max)
        return inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default,
                                 annotation=Annotated[int if f.type == "int" else float, info])

    signature, hints = inspect.signature(func), get_type_hints(func, include_extras=True)
    params = []
    for p in signature.parameters.values():
        params += [param(f) for f in fields(Decoding)] if p.name == "decoding" else [
            p.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=hints[p.name])]

    @wraps(func)
    def command(**values: Any) -> None:
        controls = {k: values.pop(k) for k in CONTROLS}
        func(**values, decoding=Decoding(**controls))

    command.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    return command


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
    from charrnn.train import command as training

    try:
        result = training.train_command(opts)
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


app.command("train")(_from_options(TrainOptions, train))


# --------------------------------------------------------------------------- sample
SAMPLING, NOVELTY = "Sampling", "Copies of the training text"


def sample(
    checkpoint: CheckpointOpt = None,
    decoding: Decoding = Decoding(),  # one option per control (with_controls)
    seed: Annotated[int | None, typer.Option("--seed", min=0, rich_help_panel=SAMPLING,
                    help="Same seed, same text. With --num-samples, sample i uses "
                         "seed+i. Default: a fresh one (shown by --jsonl).",
                    show_default=False)] = None,
    length: Annotated[int, typer.Option("--length", "-n", min=0, rich_help_panel=SAMPLING,
                      help="Characters to generate (at most, with --stop).")
                      ] = SampleConfig.length,
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
                                "batch.")] = SampleConfig.num_samples,
    echo: Annotated[bool, typer.Option("--echo/--no-echo", rich_help_panel=OUTPUT,
                    help="Print the prime before each sample.")] = True,
    separator: Annotated[str, typer.Option("--separator", rich_help_panel=OUTPUT,
                         help="Printed between samples (escapes as for --stop; '\\0' "
                              "suits xargs -0).")] = "\\n---\\n",
    jsonl: Annotated[bool, typer.Option("--jsonl", rich_help_panel=OUTPUT,
                     help="One JSON object per sample and line: index, seed, text, "
                          "stopped, and the settings.")] = False,
    show_copies: Annotated[bool, typer.Option(
        "--show-copies", rich_help_panel=NOVELTY,
        help="Per sample, the longest text copied verbatim from the training text (length, "
             "corpus offset) and the share of characters inside copies of --min-copy or "
             "more: --jsonl fields, else one line per sample on stderr.")] = False,
    min_copy: Annotated[int, typer.Option("--min-copy", min=1, rich_help_panel=NOVELTY,
                        help="Copies this long or longer count in the copied share."
                        )] = DEFAULT_MIN_COPY,
    max_copy: Annotated[int | None, typer.Option(
        "--max-copy", min=0, rich_help_panel=NOVELTY, show_default=False,
        help="Keep only samples whose longest copy is at most this many characters "
             "(the prime included); draws again with fresh seeds.")] = None,
    novel: Annotated[bool, typer.Option(
        "--novel", rich_help_panel=NOVELTY,
        help="Keep only samples whose whole text (prime and stop string included) never "
             "occurs in the training text; draws again with fresh seeds.")] = False,
    tries: Annotated[int, typer.Option("--tries", min=1, rich_help_panel=NOVELTY,
                     help="With --novel / --max-copy: draw at most this many samples per "
                          "sample asked for.")] = DEFAULT_TRIES,
    corpus: Annotated[str | None, typer.Option(
        "--corpus", rich_help_panel=NOVELTY, show_default=False,
        help="A copy of the training text, for the copy checks (default: the path the "
             "checkpoint recorded; its content must match).")] = None,
) -> None:
    """Generate text from a checkpoint, streamed to stdout as it is produced.

    Only the samples go to stdout; a closed pipe ends quietly (exit 0).

    Examples:

        charrnn sample --temp 0.8 --seed 1

        charrnn sample -p "ROMEO:" -n 500 --stop '\\n\\n' | ./my-script.sh

        charrnn sample --num-samples 8 --jsonl -n 200 | jq -r .text

        charrnn sample -p $'\\n' --stop '\\n' --novel --num-samples 20 --no-echo
    """
    from charrnn.generate.threads import set_blas_threads

    set_blas_threads()  # before numpy loads (docs/sampling.md)
    from charrnn.escapes import unescape
    from charrnn.generate import sampler as smp
    from charrnn.streaming import stream

    stops = tuple(unescape(s) for s in stop or ())
    seed = smp.fresh_seed() if seed is None else seed
    config = SampleConfig(length=length, seed=seed, stop=stops, num_samples=num_samples,
                          decoding=decoding)
    sampler = smp.Sampler.load(checkpoint)  # a missing checkpoint fails before stdin waits
    if prime == "-":
        from charrnn.data.text import decode_utf8

        prime = decode_utf8(sys.stdin.buffer.read(), "stdin")
    prime, dropped = sampler.clean_prime(prime, drop_unknown)
    if dropped:
        err(f"warning: dropped prime characters the model never saw: {dropped!r}")
    fields = {"prime": prime, **decoding.as_dict(), "length": length, "stop": list(stops),
              "checkpoint": str(sampler.checkpoint.path)}
    if show_copies or novel or max_copy is not None:
        from charrnn.novelty import sieve

        keep = sieve.CopyFilter(min_copy=min_copy, max_copy=max_copy, novel=novel, tries=tries)
        result = sieve.draw(sampler, prime, config, sieve.index_for(sampler.checkpoint, corpus),
                            keep)
        if keep.filters:
            err(f"{keep.describe()}: kept {len(result.kept)} of {result.drawn} samples drawn")
        if jsonl:
            stream(sieve.jsonl(result, fields))
        else:
            stream(sieve.plain(result, prime if echo else "", unescape(separator)), end_line=True)
            for k in result.kept if show_copies else ():
                err(f"seed {k.seed}: {k.copies.summary()}")
        if (problem := sieve.shortfall(result, keep)) is not None:
            raise CharRNNError(problem)
        return
    events = sampler.stream(prime, config)
    if jsonl:
        stream(smp.render_jsonl(events, num_samples, fields, seed=seed))
    else:
        stream(smp.render(events, num_samples, prime if echo else "", unescape(separator)),
                end_line=True)


sample_command = app.command("sample")(with_controls(sample, SAMPLING))


# --------------------------------------------------------------------------- eval
@app.command("eval")
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
    """
    from charrnn.files import check_out
    from charrnn.score import evaluate

    if html is not None:
        check_out(html)
    config = AdaptConfig(segment=adapt_segment, streams=adapt_streams, lr=adapt_lr,
                         decay=adapt_decay) if adapt else None
    report = evaluate.eval_command(file, checkpoint, device, config)
    if html is not None:
        from charrnn.inspect import surprisal
        from charrnn.runs import checkpoint as ckpt
        from charrnn.score.texts import eval_text

        c = ckpt.inspect(report["checkpoint"])
        text = eval_text(c, file)
        err(f"wrote {surprisal.write(c, text.ids, text.label, html, report, start, max_chars)}")
    if as_json:
        print(json.dumps(report))
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
    if dyn:
        a = report["adapt"]
        lines.append(f"adapted      dynamic evaluation: segment {a['segment']}, {a['streams']} "
                     f"streams, lr {a['lr']:g}, decay {a['decay']:g} "
                     f"({report['adapt_seconds']:.1f} s)")
    if unknown:
        lines.append(f"unknown      {unknown:,} characters not in the vocabulary were skipped "
                     f"({json.dumps(report['unknown_distinct'], ensure_ascii=False)})")
    print("\n".join(lines))


# neurons, report, info, serve, list: registered on ``app`` by charrnn.commands
from charrnn import commands  # noqa: E402,F401


# --------------------------------------------------------------------------- entry
def main(argv: list[str] | None = None) -> int:
    """Run the CLI; every failure is one line on stderr and an exit status, never a trace."""
    try:  # recent Typer vendors its own copy of click
        from typer._click import exceptions as click_exc
    except ImportError:  # pragma: no cover - older Typer on top of click
        from click import exceptions as click_exc  # type: ignore[no-redef]

    try:
        from charrnn.fastpath import sample_options

        fast = sample_options(sample_command, sys.argv[1:] if argv is None else list(argv))
        if fast is not None:
            sample_command(**fast)
            return 0
        rv = app(args=argv, prog_name="charrnn", standalone_mode=False)
        return rv if isinstance(rv, int) else 0
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


def entry() -> None:
    sys.exit(main())
