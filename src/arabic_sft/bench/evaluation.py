"""Evaluation at scale: score, compare and report over 1k, 10k and 100k test rows, and the report's opening in
headless chromium. A figure for docs/benchmarks.md, not a test.

    python scripts/bench_eval.py                          # results/bench/eval.{json,md}
    python scripts/bench_eval.py --rows 1000 10000 --code /tmp/landed --out results/bench/eval-landed.json

Each size is a folder of its own: a recipe (the medical QA preset, group column `category`) and two predictions
CSVs built from the AHQAD sample ($SHARED_DATA/ahqad_sample, 1,000 real rows): a "fine-tuned" run whose answer is
the reference with about a quarter of its words replaced or dropped, and a zero-shot baseline whose answer is another
row's answer. Then the project's own commands, each timed in a process of its own (its peak memory its own):
score.py on each run (no model-based metric), compare.py --config (1,000 paired bootstrap resamples, groups) and
report.py --config; then chromium opens the page from disk and the time to rows on screen is read.
`--code DIR` times another checkout's scripts (the landed code, for the before/after table).
"""

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from arabic_sft.bench.data_check import sample_folder, write_figures
from arabic_sft.runs import RESULTS, RecipeResults, bench_figures
from arabic_sft.runtime.errors import ScriptParser, UserError


SIZES = (1_000, 10_000, 100_000)
QUICK = ["--no_bertscore", "--no_semantic_similarity"]


def make_parser() -> argparse.ArgumentParser:
    parser = ScriptParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=list(SIZES), help="test rows, one run per size")
    parser.add_argument("--code", default=".", help="the checkout whose scripts are timed (default: this one)")
    parser.add_argument("--out", help="the figures, JSON (and .md beside; default results/bench/eval.json)")
    parser.add_argument("--open_timeout", type=int, default=300, help="seconds to wait for the page's rows")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def build_folder(folder: Path, rows: int, seed: int) -> None:
    """A recipe and two runs' predictions of `rows` synthetic test rows in `folder`."""
    import pandas as pd
    import yaml

    sample = sample_folder()
    real = pd.concat([pd.read_csv(sample / name) for name in ("train.csv", "valid.csv", "test.csv")])
    real = real.dropna().astype(str).reset_index(drop=True)
    rng = random.Random(seed)
    picked = [rng.randrange(len(real)) for _ in range(rows)]
    words = [word for answer in real["Answer"] for word in answer.split()]

    def tuned(answer: str) -> str:
        kept = []
        for word in answer.split():
            draw = rng.random()
            kept += [] if draw < 0.1 else [rng.choice(words)] if draw < 0.25 else [word]
        return " ".join(kept)

    frame = real.iloc[picked].reset_index(drop=True)
    base = frame[["Question", "Category"]].assign(Reference_Answer=frame["Answer"])
    results = bench_results(folder)
    results.baseline().path.mkdir(parents=True)
    tuned_answers = [tuned(answer) for answer in frame["Answer"]]
    base.assign(Generated_Answer=tuned_answers).to_csv(results.tuned.predictions(), index=False)
    others = [real["Answer"].iloc[rng.randrange(len(real))] for _ in range(rows)]
    base.assign(Generated_Answer=others).to_csv(results.baseline().predictions(), index=False)
    fields = {
        "model_name_or_path": "inceptionai/Jais-family-256m",
        "task": "medical_qa",
        "train_file": str(sample / "train.csv"),
        "output_dir": str(RecipeResults("bench").model),
        "group_column": "category",
    }
    (folder / "recipes").mkdir()
    (folder / "recipes" / "bench.yaml").write_text(yaml.safe_dump(fields, allow_unicode=True), encoding="utf-8")


def bench_results(folder: Path) -> RecipeResults:
    """The benchmark recipe's results/bench/ in `folder`."""
    return RecipeResults("bench", root=folder / RESULTS)


def timed(command: list[str], folder: Path, code: Path) -> dict:
    """Run one of `code`'s scripts in `folder`: wall seconds and the process's own peak memory (its rusage)."""
    environment = {**os.environ, "PYTHONPATH": str(code / "src"), "TQDM_DISABLE": "1"}
    with tempfile.TemporaryFile("w+") as stderr:
        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, str(code / "scripts" / command[0]), *command[1:]], cwd=folder,
                                   env=environment, stdout=subprocess.DEVNULL, stderr=stderr)  # fmt: skip
        _, status, usage = os.wait4(process.pid, 0)  # not Popen.wait: its rusage is the peak memory
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode:
            stderr.seek(0)
            raise UserError(f"{' '.join(command)} failed: {stderr.read().strip().splitlines()[-1:]}")
    return {"seconds": round(seconds, 1), "peak_rss_mb": round(usage.ru_maxrss / 1024)}


# The page is ready when it has loaded, an example row is on screen and its controls have counted the rows.
READY = """var row = document.querySelector('#examples tr.example'), shown = document.getElementById('shown');
return [row !== null && row.getBoundingClientRect().height > 0,
        document.readyState === 'complete' && shown !== null && /rows/.test(shown.textContent)];"""


def open_in_chromium(page: Path, timeout: int) -> dict:
    """Seconds from asking chromium for the page to the first example row on screen (`rows_seconds`), and to the
    page ready (`ready_seconds`: loaded, a row on screen, its controls working: the rows counted); the page's own
    first contentful paint."""
    from arabic_sft.reporting.browser import headless_chromium

    driver = headless_chromium(strategy="none")
    figures = {"rows_seconds": None, "ready_seconds": None}
    try:
        started = time.perf_counter()
        driver.get(page.resolve().as_uri())
        while time.perf_counter() - started < timeout and figures["ready_seconds"] is None:
            try:
                rows, ready = driver.execute_script(READY)
            except Exception:  # the page still loading: the driver may not answer yet
                rows, ready = False, False
            seconds = round(time.perf_counter() - started, 2)
            if rows and figures["rows_seconds"] is None:
                figures["rows_seconds"] = seconds
            if ready and rows:
                figures["ready_seconds"] = seconds
            time.sleep(0.05)
        if figures["ready_seconds"] is None:
            return {**figures, "timed_out": timeout}
        paint = driver.execute_script(
            "var p = performance.getEntriesByName('first-contentful-paint'); return p.length ? p[0].startTime : null"
        )
        return {**figures, "first_paint_ms": None if paint is None else round(paint)}
    finally:
        driver.quit()


def one_size(rows: int, code: Path, seed: int, timeout: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-eval-") as work:
        folder = Path(work)
        build_folder(folder, rows, seed)
        results = bench_results(folder)
        csvs = [results.tuned.predictions(), results.baseline().predictions()]
        figures = {"rows": rows, "csv_mb": round(sum(path.stat().st_size for path in csvs) / 2**20, 1)}
        figures["score_tuned"] = timed(["score.py", "--config", "recipes/bench.yaml", *QUICK], folder, code)
        baseline = str(results.baseline().predictions().relative_to(folder))
        figures["score_baseline"] = timed(["score.py", baseline, *QUICK], folder, code)
        figures["compare"] = timed(["compare.py", "--config", "recipes/bench.yaml"], folder, code)
        figures["report"] = timed(["report.py", "--config", "recipes/bench.yaml"], folder, code)
        figures["page_mb"] = round(results.report.stat().st_size / 2**20, 1)
        figures["browser"] = open_in_chromium(results.report, timeout)
    return figures


def markdown(figures: list[dict]) -> list[str]:
    def cell(step: dict) -> str:
        return f"{step['seconds']} s, {step['peak_rss_mb']} MB"

    def opened(browser: dict) -> str:
        ready = browser["ready_seconds"]
        ready = f"{ready} s" if ready is not None else f"not within {browser['timed_out']} s"
        return f"{browser['rows_seconds']} s / {ready}"

    lines = [
        "| test rows | score (fine-tuned) | score (baseline) | compare | report | page (its CSVs) | rows shown / "
        "page ready |",
        "|---|---|---|---|---|---|---|",
    ]
    for item in figures:
        lines.append(f"| {item['rows']:,} | {cell(item['score_tuned'])} | {cell(item['score_baseline'])} | "
                     f"{cell(item['compare'])} | {cell(item['report'])} | {item['page_mb']} MB ({item['csv_mb']} MB) "
                     f"| {opened(item['browser'])} |")  # fmt: skip
    return lines


def run(args: argparse.Namespace) -> list[Path]:
    """Each size in turn; what it wrote: the figures, JSON and markdown."""
    from arabic_sft.runtime.manifest import now

    if any(rows < 100 for rows in args.rows):
        raise UserError("--rows: give 100 or more per size")
    code = Path(args.code).resolve()
    if not (code / "scripts" / "score.py").is_file():
        raise UserError(f"--code {args.code}: not a checkout of this project (no scripts/score.py)")
    sample_folder()
    started, figures = now(), []
    for rows in args.rows:
        figures.append(one_size(rows, code, args.seed, args.open_timeout))
        print(markdown(figures)[-1], flush=True)
    out = Path(args.out) if args.out else bench_figures("eval")
    bench = {"sizes": figures, "cpus": os.cpu_count(), "code": str(code)}
    return write_figures(out, bench, markdown(figures), started)


def main(argv: list[str] | None = None) -> list[Path]:
    return run(make_parser().parse_args(argv))
