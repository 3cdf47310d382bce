"""``charrnn sample``: one option per decoding control (``Decoding``), and the rest."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from charrnn.cli.common import NOVELTY, OUTPUT, SAMPLING, CheckpointOpt, err
from charrnn.errors import CharRNNError, ConfigError
from charrnn.generate.decoding import Decoding, SampleConfig
from charrnn.novelty.filter import DEFAULT_MIN_COPY, DEFAULT_TRIES
from charrnn.safetext import check_text


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
    prime_file: Annotated[str | None, typer.Option(
        "--prime-file", rich_help_panel=SAMPLING, show_default=False,
        help="Many primes, one per line ('-': stdin): --num-samples samples of each, in "
             "one batch; sample i continues prime i // --num-samples.")] = None,
    null: Annotated[bool, typer.Option("--null", "-0", rich_help_panel=SAMPLING,
                    help="--prime-file's primes are separated by NUL characters (so they "
                         "may hold line breaks), as find -print0 writes them.")] = False,
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
    logprobs: Annotated[int | None, typer.Option(
        "--logprobs", min=0, rich_help_panel=OUTPUT, show_default=False,
        help="With --jsonl: each generated character's log-probability under the model "
             "and the N likeliest alternatives (OpenAI's logprobs object).")] = None,
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
    corpus: Annotated[list[str] | None, typer.Option(
        "--corpus", rich_help_panel=NOVELTY, show_default=False,
        help="A copy of the training text, for the copy checks (default: the paths the "
             "checkpoint recorded; its content must match); repeat it for each input of "
             "a run trained on several files or folders.")] = None,
) -> None:
    """Generate text from a checkpoint, streamed to stdout as it is produced.

    Only the samples go to stdout; a closed pipe ends quietly (exit 0).

    Examples:

        charrnn sample --temp 0.8 --seed 1

        charrnn sample -p "ROMEO:" -n 500 --stop '\\n\\n' | ./my-script.sh

        charrnn sample --num-samples 8 --jsonl -n 200 | jq -r .text

        charrnn sample -p $'\\n' --stop '\\n' --novel --num-samples 20 --no-echo
    """
    from charrnn.threads import set_blas_threads

    set_blas_threads()  # before numpy loads (docs/sampling.md)
    from charrnn.cli.output import stream
    from charrnn.escapes import unescape
    from charrnn.generate import sampler as smp

    separator = unescape(check_text(separator, "--separator"))
    stops = tuple(unescape(s) for s in stop or ())
    seed = smp.fresh_seed() if seed is None else seed
    config = SampleConfig(length=length, seed=seed, stop=stops, num_samples=num_samples,
                          decoding=decoding)
    checks = show_copies or novel or max_copy is not None
    if logprobs is not None and not jsonl:
        raise ConfigError("--logprobs needs --jsonl (the log-probabilities are JSON fields)")
    if prime_file is not None and (prime or checks):
        raise ConfigError("--prime-file takes no -p, --show-copies, --novel or --max-copy")
    if null and prime_file is None:
        raise ConfigError("-0/--null is for --prime-file")
    if logprobs is not None and checks:
        raise ConfigError("--logprobs does not combine with --show-copies, --novel or "
                          "--max-copy")
    sampler = smp.Sampler.load(checkpoint)  # a missing checkpoint fails before stdin waits
    primes = [_read(prime)] if prime_file is None else _primes(prime_file, null)
    primes, dropped = _clean(sampler, primes, drop_unknown)
    if dropped:
        err(f"warning: dropped prime characters the model never saw: {dropped!r}")
    fields = {"prime": primes[0], **decoding.as_dict(), "length": length,
              "stop": list(stops), "checkpoint": str(sampler.checkpoint.path)}
    if checks:
        from charrnn.novelty import sieve

        keep = sieve.CopyFilter(min_copy=min_copy, max_copy=max_copy, novel=novel, tries=tries)
        index = sieve.index_for(sampler.checkpoint, corpus)
        sampler.stream(primes[0], config)  # the decoding is checked before the index waits
        result = sieve.draw(sampler, primes[0], config, index, keep)
        if keep.filters:
            err(f"{keep.describe()}: kept {len(result.kept)} of {result.drawn} samples drawn")
        if jsonl:
            stream(sieve.jsonl(result, fields))
        else:
            stream(sieve.plain(result, primes[0] if echo else "", separator), end_line=True)
            for k in result.kept if show_copies else ():
                err(f"seed {k.seed}: {k.copies.summary()}")
        if (problem := sieve.shortfall(result, keep)) is not None:
            raise CharRNNError(problem)
        return
    total = num_samples * len(primes)
    events = sampler.stream_scored(primes if prime_file is not None else primes[0], config,
                                   logprobs)  # checks the batch fits in memory, first
    heads = [p for p in primes for _ in range(num_samples)]
    if jsonl:
        stream(smp.render_jsonl(events, total, fields, seed=seed,
                                primes=heads if prime_file is not None else None))
    else:
        stream(smp.render(events, total, heads if echo else "", separator),
               end_line=True)


def _read(prime: str) -> str:
    """The -p text, or stdin's for '-' (verbatim)."""
    if prime != "-":
        return prime
    from charrnn.data.text import decode_utf8

    return decode_utf8(sys.stdin.buffer.read(), "stdin")


def _primes(path: str, nul: bool) -> list[str]:
    """--prime-file's primes (see ``data.text.split_primes``)."""
    from charrnn.data.text import check_file, split_primes

    if path == "-":
        return split_primes(sys.stdin.buffer.read(), "stdin", nul)
    return split_primes(check_file(path).read_bytes(), path, nul)


def _clean(sampler, primes: list[str], drop_unknown: bool) -> tuple[list[str], str]:
    """Each prime as the model reads it, and the characters dropped from any."""
    cleaned, dropped = [], set()
    for n, p in enumerate(primes, 1):
        try:
            text, gone = sampler.clean_prime(p, drop_unknown)
        except CharRNNError as e:  # the same kind of error (its exit status), numbered
            raise type(e)(f"prime {n}: {e}" if len(primes) > 1 else str(e)) from None
        cleaned.append(text)
        dropped.update(gone)
    return cleaned, "".join(sorted(dropped))
