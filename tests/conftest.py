"""Shared fixtures: tiny local models built from the project's own samples, recipes that use them, a script runner."""

import os
import runpy
import signal
import subprocess
import sys
from pathlib import Path

import huggingface_hub.constants as hub_constants
import pandas as pd
import pytest
import torch
import yaml

from arabic_sft.configs import RecipeArguments, read_preset
from arabic_sft.data import DataSpec, data_spec, load_file
from arabic_sft.prompts import build_example, example_text
from arabic_sft.tiny import build_tiny_bert, build_tiny_model


ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data" / "samples"
SHARED_DATA = ROOT.parent / "shared" / "data"

# Each task's sample file, and the tiny model that stands in for its real model.
SAMPLE_FILES = {"proverbs": SAMPLES / "proverbs.csv", "medical_qa": SAMPLES / "medical_qa.csv"}

CPU_TRAINING = {
    "use_cpu": True,
    "bf16": False,
    "gradient_checkpointing": False,
    "report_to": "none",
    "dataloader_num_workers": 0,
    "disable_tqdm": True,
    "seed": 0,
}


def preset_spec(task: str) -> DataSpec:
    """The DataSpec of a task preset (recipes/tasks/<task>.yaml): its columns and prompt."""
    return data_spec(RecipeArguments(**read_preset(str(ROOT / "recipes" / "tasks" / f"{task}.yaml"))))


def sample_rows(task: str, **options) -> list[dict]:
    """A task's sample rows under its preset's field names (proverb/explanation, question/category/answer)."""
    return load_file(SAMPLE_FILES[task], preset_spec(task), **options).frame.to_dict("records")


def sample_texts(task: str) -> list[str]:
    """Prompt + answer texts of a task's sample rows, to train a tiny tokenizer on."""
    spec = preset_spec(task)
    return [example_text(build_example(row, spec, False)) for row in sample_rows(task)]


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> Path:
    """A tiny Llama with a chat template (stands in for ALLaM), tokenizer trained on the proverbs sample."""
    return build_tiny_model("llama", sample_texts("proverbs"), tmp_path_factory.mktemp("tiny-llama"), vocab_size=600)


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory) -> Path:
    """A tiny GPT-2 without chat template (stands in for Jais), tokenizer trained on the medical QA sample."""
    return build_tiny_model("gpt2", sample_texts("medical_qa"), tmp_path_factory.mktemp("tiny-gpt2"), vocab_size=600)


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    """A tiny random BERT encoder (WordPiece trained on both samples): BERTScore and semantic similarity offline."""
    texts = sample_texts("proverbs") + sample_texts("medical_qa")
    return build_tiny_bert(texts, tmp_path_factory.mktemp("tiny-bert"))


def sharp_random_model(path: Path):
    """(model in eval mode, tokenizer) with weights redrawn from N(0, 0.5): untrained weights give near-uniform logits
    (often a special token first); larger ones give varied text and sharp logits, so a leak or a mismatch shows."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(path).eval()
    torch.manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.5)
    return model, AutoTokenizer.from_pretrained(path)


def write_recipe(path: Path, **fields) -> Path:
    path.write_text(yaml.safe_dump(fields, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def make_recipe(tmp_path):
    """Write a CPU recipe for a task's sample data and a tiny model; keyword arguments override its fields."""

    def make(model: Path, task: str = "proverbs", **overrides) -> Path:
        fields = {
            "model_name_or_path": str(model),
            "task": task,
            "train_file": str(SAMPLE_FILES[task]),
            "validation_file": str(SAMPLE_FILES[task]),
            "output_dir": str(tmp_path / "out"),
            "num_train_epochs": 1,
            "per_device_train_batch_size": 4,
            "eval_strategy": "no",
            "save_strategy": "no",
            **CPU_TRAINING,
            **overrides,
        }
        return write_recipe(tmp_path / "recipe.yaml", **fields)

    return make


def run_script(script: str, *args: str, env: dict | None = None, timeout: int = 600, cwd: Path = ROOT):
    """Run `scripts/<script>` as a user would, from the repository root (or `cwd`)."""
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / script), *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "TOKENIZERS_PARALLELISM": "false", **(env or {})},
    )


def run_in_this_process(monkeypatch, capsys, script: str, *args, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """Run `scripts/<script>` in this process as `python scripts/<script> ARGS` would, offline; returns a
    CompletedProcess. Seconds faster than `run_script` (the libraries are imported once), for runs that leave no
    state behind (bad input, scoring, short generations)."""
    monkeypatch.setattr(sys, "argv", [script, *map(str, args)])
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    capsys.readouterr()
    sigterm = signal.getsignal(signal.SIGTERM)  # generation installs its own handler
    try:
        runpy.run_path(str(ROOT / "scripts" / script), run_name="__main__")
        status = 0
    except SystemExit as stop:
        status = stop.code if isinstance(stop.code, int) else int(stop.code is not None)
    finally:
        signal.signal(signal.SIGTERM, sigterm)
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess([script, *map(str, args)], status, out, err)


@pytest.fixture
def script_in_process(monkeypatch, capsys):
    """`run_in_this_process` with this test's monkeypatch and capsys: script_in_process("score.py", ...)."""
    return lambda script, *args, **options: run_in_this_process(monkeypatch, capsys, script, *args, **options)


def generate_command(model, test_path, out_path, *extra):
    return [
        sys.executable,
        str(ROOT / "scripts" / "generate.py"),
        "--checkpoint_dir",
        str(model),
        "--test_path",
        str(test_path),
        "--out_path",
        str(out_path),
        "--task",
        "proverbs",
        *map(str, extra),
    ]


OPTIONS = ["--max_new_tokens", 48, "--batch_size", 2]


@pytest.fixture(scope="session")
def long_generation(tiny_llama, tmp_path_factory):
    """(test file of 48 rows, its uninterrupted predictions CSV): long enough to interrupt."""
    work = tmp_path_factory.mktemp("long-generation")
    test_path = work / "test.csv"
    pd.concat([pd.DataFrame(sample_rows("proverbs"))] * 4, ignore_index=True).to_csv(test_path, index=False)
    reference = work / "reference.csv"
    subprocess.run(
        generate_command(tiny_llama, test_path, reference, *OPTIONS), cwd=ROOT, check=True, capture_output=True
    )
    return test_path, reference
