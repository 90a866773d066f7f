"""A training launch is checked before its processes start: no recipe, a precision this machine cannot run, a launch
config that contradicts the recipe, more processes than GPUs. Each is one line and a non-zero exit, with no
traceback and no process started; under a bare multi-process `accelerate launch`, the line comes once."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import ROOT, SAMPLE_FILES, write_recipe

from arabic_sft.runtime.errors import UserError
from arabic_sft.training import launch


CONFIGS = ROOT / "accelerate_configs"
needs_no_bf16_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without a GPU")


@pytest.fixture
def launched(monkeypatch):
    """Replaces accelerate's launch: records the arguments of each launch instead of starting processes."""
    import accelerate.commands.launch

    calls = []
    monkeypatch.setattr(accelerate.commands.launch, "launch_command", calls.append)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the launcher sets it for its processes: not for later tests
    return calls


def cpu_recipe(tmp_path, tiny_llama, **fields):
    return write_recipe(
        tmp_path / "r.yaml",
        model_name_or_path=str(tiny_llama),
        train_file=str(SAMPLE_FILES["proverbs"]),
        output_dir=str(tmp_path / "out"),
        use_cpu=True,
        bf16=False,
        **fields,
    )


def argv(config: str, recipe, *flags: str) -> list[str]:
    """`make train`'s launcher arguments: a launch config, accelerate flags, then sft.py and its recipe."""
    return ["--config_file", str(CONFIGS / f"{config}.yaml"), *flags, "scripts/sft.py", "--config", str(recipe)]


def refused(monkeypatch, argv: list[str], launched: list) -> str:
    monkeypatch.chdir(ROOT)
    with pytest.raises(UserError) as error:
        launch.launch(argv)
    assert launched == []  # nothing started
    assert "\n" not in str(error.value)
    return str(error.value)


def test_no_recipe_says_how_to_give_one(monkeypatch, launched):
    monkeypatch.delenv("RECIPE", raising=False)
    message = refused(monkeypatch, ["--config_file", str(CONFIGS / "cpu.yaml"), "scripts/sft.py"], launched)
    assert (
        message.startswith("no recipe given") and "--config recipes/NAME.yaml" in message and "RECIPE=NAME" in message
    )


@needs_no_bf16_gpu
def test_bf16_on_a_machine_without_a_bf16_gpu(monkeypatch, launched):
    message = refused(
        monkeypatch,
        argv("zero2", "recipes/allam_proverbs.yaml"),
        launched,
    )
    assert message.startswith("recipes/allam_proverbs.yaml: bf16 mixed precision needs a GPU with bf16")
    assert "--bf16 false --use_cpu true" in message


def test_launch_config_that_contradicts_the_recipe_precision(monkeypatch, launched, tiny_llama, tmp_path):
    recipe = cpu_recipe(tmp_path, tiny_llama)
    message = refused(
        monkeypatch,
        argv("zero2", recipe),
        launched,
    )
    assert "zero2.yaml says mixed_precision bf16" in message and "mixed_precision no" in message


def test_more_processes_than_gpus(monkeypatch, launched, tiny_llama, tmp_path):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    recipe = cpu_recipe(tmp_path, tiny_llama)
    message = refused(
        monkeypatch,
        argv("ddp", recipe, "--num_processes", "4", "--mixed_precision", "no"),
        launched,
    )
    assert message == "--num_processes 4: 4 processes per machine but this machine has 2 GPU(s)"


def test_one_process_per_gpu_of_this_machine_unless_told(monkeypatch, launched, tiny_llama, tmp_path):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.chdir(ROOT)
    recipe = cpu_recipe(tmp_path, tiny_llama)
    assert launch.launch(argv("ddp", recipe, "--mixed_precision", "no")) == 0
    assert launched[0].num_processes == 2 and launched[0].num_cpu_threads_per_process >= 1  # the config says 8


def test_the_launch_config_is_the_one_the_recipe_names_unless_given(monkeypatch, launched, tiny_llama, tmp_path):
    monkeypatch.chdir(ROOT)
    recipe = cpu_recipe(tmp_path, tiny_llama, accelerate_config="cpu")
    assert launch.launch(["scripts/sft.py", "--config", str(recipe)]) == 0
    assert launched[0].config_file == "accelerate_configs/cpu.yaml"
    missing = cpu_recipe(tmp_path, tiny_llama, accelerate_config="nowhere")
    launched.clear()
    message = refused(monkeypatch, ["scripts/sft.py", "--config", str(missing)], launched)
    assert message == f"{missing}: accelerate_config nowhere: accelerate_configs/nowhere.yaml not found"


def test_qlora_under_zero3_with_a_storage_it_cannot_shard_is_refused_before_launch(
    monkeypatch, launched, tiny_llama, tmp_path
):
    recipe = cpu_recipe(tmp_path, tiny_llama, load_in_4bit=True, use_peft=True, dtype="float32",
                        bnb_4bit_quant_storage="uint8")  # fmt: skip
    message = refused(monkeypatch, argv("zero3", recipe, "--num_processes", "2", "--mixed_precision", "no"), launched)
    assert message.startswith("bnb_4bit_quant_storage is uint8 but dtype is float32: ZeRO-3/FSDP can shard")


def test_a_gpu_config_on_a_machine_without_gpus_needs_a_process_count(monkeypatch, launched, tiny_llama, tmp_path):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    recipe = cpu_recipe(tmp_path, tiny_llama)
    message = refused(
        monkeypatch,
        argv("zero3", recipe, "--mixed_precision", "no"),
        launched,
    )
    assert "one process per GPU and this machine has none" in message and "ACCELERATE_CONFIG=cpu" in message


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


@pytest.mark.slow
@needs_no_bf16_gpu
def test_make_train_of_a_gpu_recipe_on_this_machine_is_one_line():
    result = subprocess.run(
        ["make", "--no-print-directory", "train", "RECIPE=allam_proverbs"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    assert len(error_lines(result.stderr)) == 1, result.stderr
    assert "bf16 mixed precision needs a GPU" in result.stderr and "Traceback" not in result.stdout + result.stderr


@pytest.mark.slow
def test_bare_accelerate_launch_reports_an_error_once_not_once_per_process(tiny_llama, tmp_path):
    recipe_args = ["--config", str(cpu_recipe(tmp_path, tiny_llama))]  # zero2.yaml says bf16, the recipe does not
    command = [
        str(Path(sys.executable).with_name("accelerate")),
        "launch",
        "--config_file",
        str(CONFIGS / "zero2.yaml"),
        "--num_processes",
        "2",
        "--num_cpu_threads_per_process",
        "1",
        "--main_process_port",
        "0",  # a free port: the suite runs two test files at a time
        str(ROOT / "scripts" / "sft.py"),
        *recipe_args,
    ]
    result = subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={key: value for key, value in os.environ.items() if key != "RECIPE"},
    )
    assert result.returncode != 0
    lines = error_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert "the accelerate launch says mixed_precision bf16" in lines[0]
    assert 'sft.py", line' not in result.stderr  # no traceback from the script (accelerate's own launcher adds one)
