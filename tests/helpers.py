"""What the tests share: paths, the samples and their tiny models' texts, recipe writing, running the scripts as a
user would (in a subprocess or in this process), launching training, and the one assertion for bad input."""

import collections
import json
import os
import re
import runpy
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import huggingface_hub.constants as hub_constants
import pandas as pd
import torch
import yaml
from trl import SFTConfig, SFTTrainer

from arabic_sft.data.columns import DataSpec, Split, data_spec, select
from arabic_sft.data.formats import read_table
from arabic_sft.prompts.builder import build_dataset, build_example, example_text
from arabic_sft.recipe import RecipeArguments, read_preset


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


def load_file(
    path: str | Path,
    spec: DataSpec,
    require_answer: bool = True,
    empty_cells: str = "drop",
    encoding: str = "utf-8-sig",
) -> Split:
    """One data file read and checked under `spec`, as the data loader reads each split (`select`)."""
    return select(read_table(path, encoding), str(path), spec, require_answer, empty_cells)


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


def answering_with_a_space(model, last: int, space: int) -> None:
    """Change `model` (a Llama or a GPT-2) so that after token `last` it always says `space`, a whitespace token, and
    elsewhere answers as before: its answers to prompts ending in `last` start with whitespace, as a real model's may.
    The residual stream's dimension 0 holds a large value at `last`'s positions and 0 everywhere else (no embedding
    and no layer writes it), and only `space`'s row of the LM head (untied from the embedding) reads it."""
    with torch.no_grad():
        if model.config.tie_word_embeddings:
            model.config.tie_word_embeddings = False
            model.get_output_embeddings().weight = torch.nn.Parameter(model.get_output_embeddings().weight.clone())
        embeddings = model.get_input_embeddings().weight
        embeddings[:, 0] = 0
        embeddings[last, 0] = 1e4
        for name, module in model.named_modules():
            if name.endswith(("o_proj", "down_proj")):  # Llama's outputs into the residual stream (out x in)
                module.weight[0] = 0
            elif name.endswith("c_proj"):  # GPT-2's (Conv1D: in x out, with a bias)
                module.weight[:, 0], module.bias[0] = 0, 0
        if hasattr(model, "transformer"):  # GPT-2's position embeddings and final LayerNorm
            model.transformer.wpe.weight[:, 0] = 0
            final = model.transformer.ln_f
            final.bias[0] = 0
        else:
            final = model.model.norm
        final.weight[0] = 1
        head = model.get_output_embeddings().weight
        head[:, 0] = 0
        head[space, 0] = 100


def write_recipe(path: Path, **fields) -> Path:
    path.write_text(yaml.safe_dump(fields, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def cpu_recipe(path: Path, model: Path | str, task: str = "proverbs", **overrides) -> Path:
    """The tests' one CPU recipe: a tiny model trained on a task's sample file, one epoch, no evaluation or
    checkpoints, output beside the recipe; keyword arguments override or (None) remove its fields."""
    fields = {
        "model_name_or_path": str(model),
        "task": task,
        "train_file": str(SAMPLE_FILES[task]),
        "output_dir": str(Path(path).parent / "out"),
        "num_train_epochs": 1,
        "per_device_train_batch_size": 4,
        "eval_strategy": "no",
        "save_strategy": "no",
        **CPU_TRAINING,
        **overrides,
    }
    return write_recipe(path, **{name: value for name, value in fields.items() if value is not None})


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
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}  # the scripts' own
    try:
        runpy.run_path(str(ROOT / "scripts" / script), run_name="__main__")
        status = 0
    except SystemExit as stop:
        status = stop.code if isinstance(stop.code, int) else int(stop.code is not None)
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess([script, *map(str, args)], status, out, err)


def stages_in_process(monkeypatch, capsys, cwd: Path):
    """`python -m arabic_sft STAGE ...` (arabic_sft.cli) from `cwd` in this process, each stage's script run here too
    (`run_in_this_process` in place of cli.step's process; train's script without its launcher): the console
    program's own stages, seconds faster than a process each. Returns stage(*argv) -> all they printed; a stage that
    fails fails the test with its output. capsys None (a module's fixture): the output is left to pytest's capture."""
    import shlex

    from arabic_sft import cli

    capsys, printed, original = capsys or _PytestCapture(), [], cli.step

    def step(command: list[str], show: bool = False) -> None:
        if show:  # --show prints the command only
            return original(command, show)
        printed.append(capsys.readouterr().out)
        at = next(index for index, part in enumerate(command) if part.endswith(".py"))
        done = run_in_this_process(monkeypatch, capsys, Path(command[at]).name, *command[at + 1 :], cwd=cwd)
        printed.append(done.stdout)
        assert done.returncode == 0, f"{shlex.join(command)}: {done.stdout[-3000:]}{done.stderr[-3000:]}"

    def stage(*argv) -> str:
        printed.clear()
        monkeypatch.chdir(cwd)
        capsys.readouterr()
        assert cli.main([*map(str, argv)]) == 0
        return "".join([*printed, capsys.readouterr().out])

    monkeypatch.setattr(cli, "step", step)
    return stage


Captured = collections.namedtuple("Captured", "out err")  # what capsys.readouterr() gives


class _PytestCapture:
    """Stands in for capsys where a fixture outlives a test: the output is left to pytest's own capture."""

    def readouterr(self):
        return Captured("", "")


def run_here(script: str, *args, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """`run_in_this_process` for a module- or session-scoped fixture (which has no capsys or monkeypatch): the
    stage runs in this process, its returncode returned (its output goes to pytest's capture, not the result)."""
    import pytest

    monkeypatch = pytest.MonkeyPatch()
    try:
        return run_in_this_process(monkeypatch, _PytestCapture(), script, *args, cwd=cwd)
    finally:
        monkeypatch.undo()


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


def assert_one_error_line(result: subprocess.CompletedProcess, *words: str) -> str:
    """Bad input: exit status 2, no traceback, exactly one `error:` line, holding every one of `words`. Returns it."""
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr + result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr[-2000:]
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


def launch(config: str, processes: int, recipe_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    # Through `make train`'s launcher (arabic_sft.training.launch: checks, then `accelerate launch`).
    command = [
        sys.executable,
        "-m",
        "arabic_sft.training.launch",
        "--config_file",
        str(ROOT / "accelerate_configs" / f"{config}.yaml"),
        "--num_processes",
        str(processes),
        "--mixed_precision",
        "no",
        str(ROOT / "scripts" / "sft.py"),
        "--config",
        str(recipe_path),
        *overrides,
    ]
    return subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "TOKENIZERS_PARALLELISM": "false"},
    )


def make_trainer(model, tokenizer, tmp_path, config: dict | None = None, **trainer_kwargs):
    data = pd.DataFrame(sample_rows("proverbs"))
    conversational = tokenizer.chat_template is not None
    dataset = build_dataset(data, preset_spec("proverbs"), conversational)
    args = SFTConfig(output_dir=str(tmp_path), **CPU_TRAINING, **(config or {}))
    return SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer, **trainer_kwargs)


# QLoRA as the seed recipes do it (nf4, double quantization), fp32 compute on a CPU, trained hard enough to matter.
QLORA = {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "use_bnb_nested_quant": True, "use_peft": True,
         "lora_r": 8, "lora_alpha": 32, "lora_target_modules": "all-linear", "dtype": "float32",
         "learning_rate": 5e-3, "num_train_epochs": 2}  # fmt: skip


def train_qlora_adapter(model: Path, work: Path, **fields) -> Path:
    """A QLoRA adapter trained by sft.py on `model` and the proverbs sample (`fields` override `QLORA`)."""
    recipe = cpu_recipe(work / "r.yaml", model, output_dir=str(work / "adapter"), **{**QLORA, **fields})
    result = run_script("sft.py", "--config", recipe)
    assert result.returncode == 0, result.stderr[-3000:]
    return work / "adapter"


# The report's fixture: one answer replaced by markup, three by their reference.
ATTACK = "<script>alert(1)</script> و</td></tr><b>ليس عريضا</b>"
EXACT = [3, 5, 8]  # rows whose fine-tuned answer is made equal to the reference


class ScriptedJudge:
    """A judge whose replies are fixed in advance, one per row (the real judging code around it: cache, parsing,
    judge_X.json and its examples): correctness `scores[i]` for row i, the other criteria 3."""

    def __new__(cls, scores):
        from arabic_sft.judging.backends import Judge

        class Scripted(Judge):
            def identity(self):
                return {"backend": "scripted", "scores": scores}

            def answer_missing(self, conversations, done, store):
                for index in range(len(conversations)):
                    if index not in done:
                        reply = {"correctness": scores[index], "completeness": 3, "conciseness": 3, "language": 3}
                        store(index, json.dumps(reply))

        return Scripted(max_new_tokens=8)


def examples_ready(driver, timeout: int = 60):
    """Wait until the report's examples browser has drawn its rows after the last action (its script sets
    `data-examples="ready"` on the body once a page is drawn, "busy" at each change)."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout, poll_frequency=0.05).until(
        lambda page: page.execute_script("return document.body.getAttribute('data-examples')") == "ready"
    )
    return driver


# A real Slurm (the `slurm` fixture: scripts/slurm/local_cluster.py): submit the project's sbatch scripts to it.
def slurm_environment(slurm: dict, **variables: str) -> dict:
    return {**os.environ, "TOKENIZERS_PARALLELISM": "false", **slurm, **variables}


def sbatch(slurm: dict, script: str, *args, options=(), env: dict | None = None, cwd: Path = ROOT) -> str:
    """Submit scripts/slurm/SCRIPT as a user would, with no GPU asked for and one CPU a task (a GPU cluster's
    settings in the script's #SBATCH lines, overridden on the command line); returns the job id."""
    command = ["sbatch", "--parsable", "--gres=none", "--cpus-per-task=1", *options,
               str(ROOT / "scripts" / "slurm" / script), *map(str, args)]  # fmt: skip
    result = subprocess.run(command, cwd=cwd, env=slurm_environment(slurm, **(env or {})), capture_output=True,
                            text=True)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().split(";")[0]


def job_records(slurm: dict, job: str) -> list[str]:
    """`scontrol show job` one line per job (an array's every task), as long as the controller keeps them."""
    shown = subprocess.run(["scontrol", "show", "job", job, "-o"], env=slurm_environment(slurm), capture_output=True,
                           text=True)  # fmt: skip
    return [line for line in shown.stdout.splitlines() if line.startswith("JobId=")]


def job_field(slurm: dict, job: str, name: str) -> str | None:
    records = job_records(slurm, job)
    found = re.search(rf"\b{name}=(\S*)", records[0]) if records else None
    return found.group(1) if found else None


def requeued_state(slurm: dict, job: str, timeout: float = 300) -> str | None:
    """The job's state once it has been requeued (Restarts=1) and its first run has ended: `scontrol requeue` counts
    the restart at once, while the old run's steps may still be COMPLETING (or REQUEUED) for a while after."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        restarts, state = job_field(slurm, job, "Restarts"), job_field(slurm, job, "JobState")
        if restarts == "1" and state not in {"COMPLETING", "REQUEUED"}:
            return state
        time.sleep(0.2)
    raise AssertionError(f"Slurm job {job} not requeued within {timeout:.0f} s: {job_records(slurm, job)}")


def wait_for_job(slurm: dict, job: str, timeout: float = 600) -> list[str]:
    """Each task's final state once none is pending or running (a hang fails after `timeout` seconds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = [re.search(r"JobState=(\w+)", record).group(1) for record in job_records(slurm, job)]
        if states and not {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "SUSPENDED"} & set(states):
            return states
        time.sleep(0.5)
    raise AssertionError(f"Slurm job {job} not finished within {timeout:.0f} s: {job_records(slurm, job)}")


def build_tiny_bert(
    texts: Iterable[str],
    out_dir: str | Path,
    vocab_size: int = 500,
    hidden_size: int = 32,
    num_layers: int = 2,
    seed: int = 0,
) -> Path:
    """A random-weight BERT encoder with a WordPiece tokenizer trained on `texts`: the offline stand-in for the
    embedding models of BERTScore and semantic similarity. Returns the directory."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel, BertTokenizerFast

    torch.manual_seed(seed)
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    backend = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=False)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece()
    backend.train_from_iterator(
        texts, trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=special, show_progress=False)
    )
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[(token, backend.token_to_id(token)) for token in ("[CLS]", "[SEP]")],
    )
    tokenizer = BertTokenizerFast(
        tokenizer_object=backend,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=512,
    )
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=2,
        intermediate_size=2 * hidden_size,
        max_position_embeddings=512,
    )
    out_dir = Path(out_dir)
    BertModel(config).save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


@contextmanager
def transformers_serve(model: Path | str, log: Path, timeout: float = 240) -> Iterator[str]:
    """`transformers serve` of `model` (through make serve's `arabic_sft.publishing.serving`) on a free port of
    127.0.0.1, offline, its output in `log`, until the block ends; yields its base URL (.../v1) once it answers."""
    import socket
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "arabic_sft.publishing.serving", str(model), "--host", "127.0.0.1", "--port",
               str(port), "--device", "cpu", "--log-level", "info"]  # fmt: skip
    with open(log, "w", encoding="utf-8") as handle:
        server = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT,
                                  env={**os.environ, "HF_HUB_OFFLINE": "1"})  # fmt: skip
    try:
        deadline = time.time() + timeout
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                assert server.poll() is None and time.time() < deadline, log.read_text(encoding="utf-8")[-2000:]
                time.sleep(0.3)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.terminate()
        server.wait(timeout=60)
