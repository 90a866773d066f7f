"""The refusals that need no model, timed from the command to its one line: the console program as make runs it
(`python -m arabic_sft STAGE RECIPE ...`, a new process each time), the median of a few runs. Each comes before
torch, transformers or TRL is imported (`tests/test_cli_errors.py` proves that part; the seconds are this figure's).
"""

import os
import socket
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import yaml

from arabic_sft.named import PROJECT_ROOT
from arabic_sft.runtime.machine import surely_no_gpu


@contextmanager
def refusal_cases(work: Path):
    """{case: the console program's arguments} for a recipe never trained, a port in use, a renamed column, a
    recipe typo and (on a machine without a GPU) a GPU recipe, with their files in `work`; a port is held open
    while the block runs."""
    sample = PROJECT_ROOT / "data" / "samples" / "proverbs.csv"
    renamed = work / "renamed.csv"
    text = sample.read_text(encoding="utf-8-sig")
    renamed.write_text(text.replace(text.split(",")[0], "Saying", 1), encoding="utf-8")

    def recipe(name: str, **fields) -> str:
        fields = {"model_name_or_path": "models/absent", "task": "proverbs", "train_file": str(sample),
                  "output_dir": str(work / name / "model"), **fields}  # fmt: skip
        (work / f"{name}.yaml").write_text(yaml.safe_dump(fields, allow_unicode=True), encoding="utf-8")
        return str(work / f"{name}.yaml")

    never, typo = recipe("never"), recipe("typo", learning_rat=1e-4)
    columns = recipe("columns", train_file=str(renamed), test_file=str(renamed))
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = str(held.getsockname()[1])
        cases = {"recipe typo (train)": ["train", typo], "renamed column (train)": ["train", columns],
                 "renamed column (baseline)": ["baseline", columns], "never trained (eval)": ["eval", never],
                 **{f"never trained ({stage})": [stage, never] for stage in ("export", "serve", "chat", "publish")},
                 "port in use (serve)": ["serve", never, "--port", port],
                 "port in use (chat)": ["chat", never, "--port", port]}  # fmt: skip
        if surely_no_gpu():
            qlora = PROJECT_ROOT / "recipes" / "jais2_proverbs_qlora.yaml"
            cases["GPU recipe on a CPU (train)"] = ["train", str(qlora)]
        yield cases


def refuse(arguments: list[str], environment: dict | None = None) -> subprocess.CompletedProcess:
    """The console program run with `arguments` from the project's root, as make runs it."""
    return subprocess.run([sys.executable, "-m", "arabic_sft", *arguments], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, env=environment or {**os.environ})  # fmt: skip


def refusal_results(work: Path, repeats: int = 3) -> dict:
    """{"refusal_s <case>": seconds from the command to its line (the median of `repeats`)}; a case that does not
    refuse in one line (exit status 2) is an error, not a figure."""
    figures = {}
    with refusal_cases(work) as cases:
        for case, arguments in cases.items():
            seconds = []
            for _ in range(repeats):
                started = time.perf_counter()
                result = refuse(arguments)
                seconds.append(time.perf_counter() - started)
                if result.returncode != 2:
                    raise RuntimeError(f"{case}: exit {result.returncode}, not a refusal: {result.stderr[-500:]}")
            figures[f"refusal_s {case}"] = statistics.median(seconds)
    return figures
