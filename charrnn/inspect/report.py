"""The report command's work: a run's page of loss curves, configuration and samples, or
one page comparing several runs (``inspect.compare``)."""

from __future__ import annotations

from pathlib import Path

from charrnn.files import check_out, write_page
from charrnn.generate.decoding import Decoding, SampleConfig
from charrnn.generate.sampler import Sampler
from charrnn.inspect import pages, runinfo
from charrnn.runs import folder as runfolder
from charrnn.runs.metrics import read_metrics
from charrnn.score.measures import bits
from charrnn.train import preview

REPORT_TEMPERATURES = (0.5, 0.8, 1.0)


def run_report(run: str | Path | None, out: str | Path | None = None, length: int = 300,
               temperatures: tuple[float, ...] = REPORT_TEMPERATURES, seed: int = 0) -> Path:
    """Write a run's report.html: curves from metrics.jsonl, config, vocabulary, samples."""
    run_dir = Path(run) if run is not None and Path(run).is_dir() else \
        runfolder.resolve(run).parent
    target = check_out(out or run_dir / "report.html")  # before sampling, not after
    meta_ckpt = runfolder.newest_meta(run_dir)
    best = runfolder.resolve(run_dir)
    sampler = Sampler.load(best)
    samples = [(t, "".join(sampler.generate("", SampleConfig(
        length, seed, decoding=Decoding(temperature=t))))) for t in temperatures]
    metrics = read_metrics(run_dir)
    previews, total = preview.table(metrics)
    preview_note = ("At each validation, the first characters drawn from the weights of that "
                    f"moment (temperature {preview.PREVIEW_TEMPERATURE:g}, the same seed each "
                    "time)" + (f"; {len(previews)} of {total} shown, spread evenly"
                               if total > len(previews) else "") + ".")
    prog = meta_ckpt.meta.get("progress", {})
    best_val = prog.get("best_val_loss")
    summary = [
        ("best val loss (nats/char)", f"{best_val:.4f}" if best_val is not None else "n/a"),
        ("best val bits/char", f"{bits(best_val):.3f}" if best_val is not None
         else "n/a"),
        ("characters seen", f"{prog.get('chars_seen', 0):,}"),
        ("training time", runinfo.duration(prog.get("elapsed"))),
    ]
    sections = runinfo.describe(meta_ckpt)
    sections.append(("Training config", [(k, str(v)) for k, v in
                                         meta_ckpt.meta.get("train", {}).items()]))
    page = pages.run_page(str(run_dir), sections, metrics, meta_ckpt.vocab.chars,
                           samples, summary,
                           f"{length} characters each from {best}, seed {seed}",
                           previews, preview_note)
    return write_page(target, page)


def compare_report(targets: list[str], out: str | Path | None = None,
                   evaluate: bool = True, device: str = "auto") -> tuple[Path, str]:
    """Write the page comparing the runs (default ``compare.html`` here); returns its path
    and the terminal table of their figures. ``evaluate`` scores each run's held-out
    split (torch)."""
    from charrnn.inspect import compare, comparepage

    target = check_out(out or "compare.html")
    runs = compare.load_runs(targets)
    if evaluate:
        compare.evaluate(runs, device)
    return (write_page(target, comparepage.compare_page(runs)),
            comparepage.terminal_table(runs))
