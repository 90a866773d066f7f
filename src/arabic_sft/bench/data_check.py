"""The data check at scale: near-duplicates and contamination over 10k, 100k and 1M training rows of Arabic medical
Q/A, each size in its own process (its peak memory its own). A figure for docs/benchmarks.md, not a test.

    python scripts/bench_data_check.py                       # results/bench/data_check.{json,md}
    python scripts/bench_data_check.py --rows 100000 --one   # one size, in this process
    python scripts/bench_data_check.py --rows 10000 --mixture 10000   # sizes, then the mixture

The rows are built from the AHQAD sample ($SHARED_DATA/ahqad_sample, 1,000 real rows): each training row joins the
first half of one real question to the second half of another, and likewise for its answer and category, so that
rows share words as real forum questions do; 5% are copies of an earlier row with one edit (a word replaced, dropped
or added, diacritics or tatweel added): the near-duplicates to find. The test split is the sample's 500 real test
rows; 20 training answers quote 9 words of a test question (contamination). The recipe's settings are the defaults
(0.8 over word sets, 8-word spans); the general tasks are not read (lm-eval's task index is not the data check).

The mixture (--mixture ROWS, 100,000 by default): the same rows as two sources of one recipe (`datasets`): "own",
the first tenth, with the test rows, and "public", the rest; checked as training checks it before a run (its result
kept), then again with the same sources, settings and files, when the kept result is reused.
"""

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from arabic_sft.runs import bench_figures
from arabic_sft.runtime.errors import ScriptParser, UserError, run_cli


SIZES = (10_000, 100_000, 1_000_000)


def make_parser() -> argparse.ArgumentParser:
    parser = ScriptParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=list(SIZES), help="training rows, one run per size")
    parser.add_argument("--one", action="store_true", help="one size in this process; prints its figures as JSON")
    parser.add_argument("--out", help="the figures, JSON (and .md beside; default results/bench/data_check.json)")
    parser.add_argument("--mixture", type=int, default=100_000, help="rows of the two-source mixture (0: none)")
    parser.add_argument("--kind", choices=["size", "mixture"], default="size", help="with --one: what --rows are")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def sample_folder() -> Path:
    folder = Path(os.environ.get("SHARED_DATA", "../shared/data")) / "ahqad_sample"
    if not (folder / "train.csv").is_file():
        raise UserError(f"{folder}: the AHQAD sample is not here (SHARED_DATA=DIR names the shared data folder)")
    return folder


def build_rows(rows: int, seed: int, folder: Path):
    """(training frame, test frame): `rows` synthetic training rows, the sample's test rows."""
    import pandas as pd

    real = pd.concat([pd.read_csv(folder / name) for name in ("train.csv", "valid.csv")], ignore_index=True)
    test = pd.read_csv(folder / "test.csv")
    rng = random.Random(seed)
    halves = {column: [str(text).split() for text in real[column]] for column in ("Question", "Answer")}
    vocabulary = sorted({word for words in halves["Question"] for word in words})
    categories = list(real["Category"])

    def joined(column: str) -> str:
        first, second = rng.choice(halves[column]), rng.choice(halves[column])
        return " ".join(first[: len(first) // 2] + second[len(second) // 2 :])

    def edited(text: str) -> str:
        words = text.split()
        where = rng.randrange(len(words))
        change = rng.choice(("replace", "drop", "add", "marks"))
        if change == "replace":
            words[where] = rng.choice(vocabulary)
        elif change == "drop" and len(words) > 3:
            del words[where]
        elif change == "add":
            words.insert(where, rng.choice(vocabulary))
        else:
            words[where] = "\u0640".join(words[where]) + "\u064e"  # tatweel between letters, a fatha
        return " ".join(words)

    records = []
    for number in range(rows):
        if number > 20 and rng.random() < 0.05:
            copy = dict(records[rng.randrange(number)])
            copy["Question"] = edited(copy["Question"])
            records.append(copy)
        else:
            records.append({"Question": joined("Question"), "Category": rng.choice(categories),
                            "Answer": joined("Answer")})  # fmt: skip
    questions = list(test["Question"])
    for number in rng.sample(range(rows), 20):  # a test question quoted in a training answer
        quoted = str(rng.choice(questions)).split()
        if len(quoted) >= 9:
            records[number]["Answer"] += " " + " ".join(quoted[:9])
    return pd.DataFrame(records), test


def one_size(rows: int, seed: int) -> dict:
    """Check `rows` training rows in this process: seconds (reading the splits, the check), peak memory, counts."""
    from arabic_sft.data.splits import read_as_trained
    from arabic_sft.recipe import RecipeArguments, read_preset
    from arabic_sft.training.data_check import run_check

    with tempfile.TemporaryDirectory() as work:
        train, test = build_rows(rows, seed, sample_folder())
        train.to_csv(Path(work) / "train.csv", index=False)
        test.to_csv(Path(work) / "test.csv", index=False)
        args = RecipeArguments(**{**read_preset("medical_qa"), "train_file": str(Path(work) / "train.csv"),
                                  "test_file": str(Path(work) / "test.csv")})  # fmt: skip
        started, cpu = time.perf_counter(), cpu_seconds()
        splits, spec, _ = read_as_trained(args, 42)
        read = time.perf_counter() - started
        result = run_check(args, splits, spec, with_general=False)
        total, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"train_rows": rows, "test_rows": len(test), "seconds": round(total, 1), "read_seconds": round(read, 1),
            "cpu_seconds": round(cpu, 1), "peak_rss_mb": round(peak), "counts": result.counts()}  # fmt: skip


def one_mixture(rows: int, seed: int) -> dict:
    """The `rows` training rows as a two-source mixture, checked in this process as training checks them, then
    again (the kept result reused): the seconds of each (reading the sources included), peak memory, counts."""
    from arabic_sft.data.splits import read_as_trained
    from arabic_sft.recipe import RecipeArguments, read_preset
    from arabic_sft.training.data_check import run_check

    with tempfile.TemporaryDirectory() as work:
        train, test = build_rows(rows, seed, sample_folder())
        own = rows // 10
        files = {name: Path(work) / f"{name}.csv" for name in ("own", "public", "test")}
        train.iloc[:own].to_csv(files["own"], index=False)
        train.iloc[own:].to_csv(files["public"], index=False)
        test.to_csv(files["test"], index=False)
        preset = read_preset("medical_qa")
        args = RecipeArguments(datasets=[
            {"id": "own", **preset, "train_file": str(files["own"]), "test_file": str(files["test"])},
            {"id": "public", **preset, "train_file": str(files["public"])},
        ])  # fmt: skip
        seconds = []
        for _ in range(2):
            started = time.perf_counter()
            splits, spec, _ = read_as_trained(args, 42)
            result = run_check(args, splits, spec, False, Path(work) / "kept.json")
            seconds.append(round(time.perf_counter() - started, 1))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"train_rows": rows, "sources": {"own": own, "public": rows - own}, "seconds": seconds[0],
            "again_seconds": seconds[1], "reused": bool(result.reused), "peak_rss_mb": round(peak),
            "counts_by_source": result.record().get("counts_by_source", {})}  # fmt: skip


def cpu_seconds() -> float:
    """CPU time of this process and its finished workers (the words are found in worker processes at scale)."""
    own, workers = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime


def run(args: argparse.Namespace) -> list[Path]:
    """Each size in its own process; what it wrote: the figures, JSON and markdown."""
    from arabic_sft.runtime.manifest import now

    if any(rows < 100 for rows in args.rows):
        raise UserError("--rows: give 100 or more per size")
    sample_folder()
    if args.one:
        for rows in args.rows:
            measure = one_mixture if args.kind == "mixture" else one_size
            print(json.dumps(measure(rows, args.seed)), flush=True)
        return []
    started, figures = now(), []
    for rows in args.rows:
        figures.append(in_own_process(rows, args.seed))
        print(f"{rows:>7} training rows: {figures[-1]['seconds']} s, peak {figures[-1]['peak_rss_mb']} MB", flush=True)
    mixture = in_own_process(args.mixture, args.seed, mixture=True) if args.mixture else None
    lines = [
        "| training rows | test rows | seconds (read + check) | CPU seconds | peak memory (MB) | pairs found |",
        "|---|---|---|---|---|---|",
    ]
    for figure in figures:
        found = ", ".join(f"{sum(where.values())} {kind}" for kind, where in figure["counts"].items())
        lines.append(f"| {figure['train_rows']:,} | {figure['test_rows']} | {figure['seconds']} | "
                     f"{figure['cpu_seconds']} | {figure['peak_rss_mb']} | {found} |")  # fmt: skip
    if mixture:
        sources = ", ".join(f"{name} {count:,}" for name, count in mixture["sources"].items())
        lines += ["", "| mixture rows (sources) | check before training (s) | again, kept result reused (s) | peak "
                  "memory (MB) |", "|---|---|---|---|",
                  f"| {mixture['train_rows']:,} ({sources}) | {mixture['seconds']} | {mixture['again_seconds']} | "
                  f"{mixture['peak_rss_mb']} |"]  # fmt: skip
    out = Path(args.out) if args.out else bench_figures("data_check")
    return write_figures(out, {"sizes": figures, "mixture": mixture, "cpus": os.cpu_count()}, lines, started)


def in_own_process(rows: int, seed: int, mixture: bool = False) -> dict:
    """One size's figures (a mixture's with `mixture`), measured in a process of its own (its peak memory its own)."""
    command = [sys.executable, "-m", "arabic_sft.bench.data_check", "--one", "--rows", str(rows), "--seed", str(seed),
               "--kind", "mixture" if mixture else "size"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise UserError(f"the data check of {rows} rows failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def write_figures(out: Path, bench: dict, lines: list[str], started: str) -> list[Path]:
    """A benchmark's figures: `bench` as JSON with the run's manifest, its table (`lines`) as markdown beside it and
    on the terminal; the files written."""
    from arabic_sft.runtime.manifest import build_manifest, write_json_atomic

    out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out, build_manifest({"bench": bench}, [], started))
    out.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return [out, out.with_suffix(".md")]


def main(argv: list[str] | None = None) -> list[Path]:
    return run(make_parser().parse_args(argv))


if __name__ == "__main__":
    run_cli(main)
