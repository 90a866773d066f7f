"""Never lose work: a SIGKILLed training resumes from its last complete checkpoint to the same losses, a checkpoint
cut off mid-write is never resumed from, and the Hub token never reaches a file a run writes."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import ROOT, SAMPLE_FILES, assert_one_error_line, cpu_recipe, run_in_this_process, run_script

from arabic_sft.runtime.locks import exclusive_output
from arabic_sft.runtime.manifest import sha256
from arabic_sft.training.checkpoints import is_complete


pytestmark = pytest.mark.slow  # make test-fast skips this file


FAKE_TOKEN = "hf_FAKEtoken0123456789abcdefNEVERWRITTEN"
MAX_STEPS = 48


def recipe(path: Path, model: Path, output_dir: Path) -> Path:
    return cpu_recipe(path, model, output_dir=str(output_dir), num_train_epochs=None, max_steps=MAX_STEPS,
                      per_device_train_batch_size=2, learning_rate=1e-3, logging_steps=1, save_strategy="steps",
                      save_steps=4, seed=0)  # fmt: skip


def losses(output_dir: Path) -> dict[int, float]:
    state = json.loads((output_dir / "trainer_state.json").read_text(encoding="utf-8"))
    return {entry["step"]: entry["loss"] for entry in state["log_history"] if "loss" in entry}


@pytest.fixture(scope="module")
def uninterrupted(tiny_llama, tmp_path_factory):
    """One whole training run, with a (fake) Hub token in its environment; returns (output dir, its stdout+stderr)."""
    work = tmp_path_factory.mktemp("uninterrupted")
    result = run_script(
        "sft.py", "--config", recipe(work / "recipe.yaml", tiny_llama, work / "out"), env={"HF_TOKEN": FAKE_TOKEN}
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return work / "out", result.stdout + result.stderr


def sft_command(recipe_path: Path) -> list[str]:
    return [sys.executable, str(ROOT / "scripts" / "sft.py"), "--config", str(recipe_path)]


def test_killed_training_resumes_from_the_last_complete_checkpoint(tiny_llama, uninterrupted, tmp_path):
    out = tmp_path / "out"
    command = sft_command(recipe(tmp_path / "r.yaml", tiny_llama, out))
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while (
        time.time() < deadline
        and not (out / "checkpoint-8" / "trainer_state.json").is_file()
        and process.poll() is None
    ):
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "training ended before it could be killed"
    assert not (out / "model.safetensors").exists()
    complete = max(int(p.name.split("-")[1]) for p in out.glob("checkpoint-*") if (p / "trainer_state.json").is_file())
    assert complete < MAX_STEPS

    # The next checkpoint as a kill during its writing leaves it: weights half written, no trainer state.
    torn = out / f"checkpoint-{complete + 4}"
    shutil.rmtree(torn, ignore_errors=True)
    torn.mkdir()
    weights = (out / f"checkpoint-{complete}" / "model.safetensors").read_bytes()
    (torn / "model.safetensors").write_bytes(weights[: len(weights) // 2])

    result = run_script("sft.py", "--config", tmp_path / "r.yaml")  # the same command again
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout + result.stderr
    assert (
        f"checkpoint-{complete + 4} is incomplete" in log and f"resuming from {out / f'checkpoint-{complete}'}" in log
    )
    assert log.count("{'loss':") == MAX_STEPS - complete  # this run trained only the steps after the checkpoint
    resumed, reference = losses(out), losses(uninterrupted[0])
    assert sorted(resumed) == list(range(1, MAX_STEPS + 1))  # the checkpoint's history, then the steps after it
    for step in range(1, MAX_STEPS + 1):
        assert resumed[step] == pytest.approx(reference[step], rel=1e-3), step


def test_resuming_from_an_incomplete_checkpoint_is_refused(tiny_llama, tmp_path):
    torn = tmp_path / "out" / "checkpoint-4"
    torn.mkdir(parents=True)
    result = run_script(
        "sft.py",
        "--config",
        recipe(tmp_path / "r.yaml", tiny_llama, tmp_path / "out"),
        "--resume_from_checkpoint",
        torn,
    )
    assert_one_error_line(result, str(torn), "incomplete checkpoint")


def test_hub_token_is_never_written(tiny_llama, uninterrupted, tmp_path, monkeypatch, script_in_process):
    out, log = uninterrupted
    test_path = tmp_path / "test.csv"
    shutil.copy(SAMPLE_FILES["proverbs"], test_path)
    predictions = tmp_path / "predictions_test.csv"
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    generated = script_in_process(
        "generate.py",
        "--checkpoint_dir",
        out,
        "--test_path",
        test_path,
        "--out_path",
        predictions,
        "--max_new_tokens",
        4,
        "--task",
        "proverbs",
    )
    assert generated.returncode == 0, generated.stderr[-2000:]
    scored = script_in_process("score.py", predictions, "--no_bertscore", "--no_semantic_similarity")
    assert scored.returncode == 0, scored.stderr[-2000:]
    written = [path for folder in (out, tmp_path) for path in folder.rglob("*") if path.is_file()]
    assert any(path.name == "run_manifest.json" for path in written) and any(
        path.suffix == ".json" for path in written
    )
    leaks = [str(path) for path in written if FAKE_TOKEN.encode() in path.read_bytes()]
    assert leaks == []
    assert FAKE_TOKEN not in log + generated.stdout + generated.stderr + scored.stdout + scored.stderr


def test_run_writes_its_manifest_and_loss_curve(uninterrupted):
    out, _ = uninterrupted
    manifest = json.loads((out / "run_manifest.json").read_text(encoding="utf-8"))
    assert set(manifest["config"]) == {"recipe", "model", "training", "launch", "data"}
    assert manifest["config"]["launch"] == {"num_processes": 1, "distributed_type": "NO", "global_batch_size": 2}
    assert manifest["config"]["training"]["max_steps"] == MAX_STEPS
    assert manifest["config"]["recipe"]["train_file"] == str(SAMPLE_FILES["proverbs"])
    assert manifest["data_sha256"] == {str(SAMPLE_FILES["proverbs"]): sha256(SAMPLE_FILES["proverbs"])}
    assert manifest["versions"]["torch"] and manifest["versions"]["trl"] and manifest["device"].startswith("cpu")
    assert manifest["started"] <= manifest["finished"] and manifest["git_commit"]
    assert (out / "loss.png").read_bytes().startswith(b"\x89PNG")


NOISE = (
    "gemm_4bit_forward",
    "FutureWarning",
    "Setting accelerator to CPU",
    "num_cpu_threads_per_process",
    "Map:",
    "Tokenizing",
    "Retrying in",
)


def test_training_output_says_what_happened_without_third_party_noise(uninterrupted):
    _, log = uninterrupted
    assert "loss parity check passed" in log and "data: 12 train examples" in log
    assert [noise for noise in NOISE if noise in log] == []


def files_and_times(folder: Path) -> dict[str, tuple[int, str]]:
    return {
        str(path.relative_to(folder)): (path.stat().st_mtime_ns, sha256(path))
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_rerunning_a_finished_run_changes_nothing(uninterrupted):
    out, _ = uninterrupted
    before = files_and_times(out)
    result = run_script("sft.py", "--config", out.parent / "recipe.yaml")  # the same command again
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"{out}: this run finished" in result.stdout and "--overwrite_output_dir true" in result.stdout
    assert "{'loss':" not in result.stdout and "resuming" not in result.stdout
    assert files_and_times(out) == before


def test_a_finished_run_with_other_settings_names_the_fields_that_differ(uninterrupted, monkeypatch, capsys):
    out, _ = uninterrupted
    before = files_and_times(out)
    result = run_in_this_process(
        monkeypatch, capsys, "sft.py", "--config", out.parent / "recipe.yaml", "--learning_rate", "5e-4"
    )
    assert_one_error_line(
        result,
        f"{out} holds a finished run (",
        "with other settings: learning_rate: 0.001 -> 0.0005;",
        "pass --overwrite_output_dir true, or choose another --output_dir",
    )
    assert files_and_times(out) == before


def test_overwrite_output_dir_trains_again_from_scratch(uninterrupted, tiny_llama, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(uninterrupted[0], out)
    old = json.loads((out / "run_manifest.json").read_text(encoding="utf-8"))
    result = run_script(
        "sft.py",
        "--config",
        recipe(tmp_path / "r.yaml", tiny_llama, out),
        "--overwrite_output_dir",
        "true",
        "--max_steps",
        "4",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "removed the previous run's checkpoint-" in result.stdout and "resuming" not in result.stdout
    assert sorted(losses(out)) == [1, 2, 3, 4]  # a new run, not the old one resumed
    assert sorted(path.name for path in out.glob("checkpoint-*")) == ["checkpoint-4"]  # none of the old run's
    assert json.loads((out / "run_manifest.json").read_text(encoding="utf-8"))["started"] > old["started"]


def start_and_read_until_step(command: list[str], steps: int, **options) -> tuple[subprocess.Popen, list[str]]:
    """Start a training and read its output until `steps` loss lines went by; (the process, the lines read)."""
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"},
        **options,
    )
    log, seen = [], 0
    while seen < steps and (line := process.stdout.readline()):
        log.append(line)
        seen += "{'loss':" in line
    return process, log


def assert_same_losses(out: Path, reference: Path) -> None:
    resumed, expected = losses(out), losses(reference)
    assert sorted(resumed) == list(range(1, MAX_STEPS + 1))
    for step in range(1, MAX_STEPS + 1):
        assert resumed[step] == pytest.approx(expected[step], rel=1e-3), step


def test_sigterm_saves_a_complete_checkpoint_at_a_step_end_and_exits_143(tiny_llama, tmp_path):
    # The same stop as a Ctrl-C (below, which also resumes from it), sent to sft.py as a scheduler sends it.
    out = tmp_path / "out"
    command = sft_command(recipe(tmp_path / "r.yaml", tiny_llama, out))
    process, log = start_and_read_until_step(command, 6)  # SIGTERM in the middle of step 7 or so
    process.send_signal(signal.SIGTERM)
    log.append(process.communicate(timeout=300)[0])
    log = "".join(log)
    assert process.returncode == 128 + signal.SIGTERM, log[-3000:]
    stopped = int(re.search(r"stopped by SIGTERM after step (\d+): ", log).group(1))
    assert 6 <= stopped < MAX_STEPS and "the same command resumes from it" in log and "Traceback" not in log
    assert is_complete(out / f"checkpoint-{stopped}") and not (out / "run_manifest.json").exists()
    assert not (out / "README.md").exists()  # TRL's draft card (base model None) is not left as the model's card


def test_ctrl_c_saves_a_checkpoint_exits_130_and_the_same_command_resumes_to_the_same_losses(
    tiny_llama, uninterrupted, tmp_path
):
    out = tmp_path / "out"
    # `make train`'s launcher in a process group of its own: a Ctrl-C reaches every process of the group.
    command = [sys.executable, "-m", "arabic_sft.training.launch", "scripts/sft.py", "--config"]
    command.append(str(recipe(tmp_path / "r.yaml", tiny_llama, out)))
    process, log = start_and_read_until_step(command, 6, start_new_session=True)
    os.killpg(process.pid, signal.SIGINT)
    log.append(process.communicate(timeout=300)[0])
    log = "".join(log)
    assert process.returncode == 130, log[-3000:]
    assert "Ctrl-C: stopping at the end of this step with a checkpoint (Ctrl-C again stops at once)" in log
    stopped = int(re.search(r"stopped by Ctrl-C after step (\d+): ", log).group(1))
    assert 6 <= stopped < MAX_STEPS and "the same command resumes from it" in log
    assert "Traceback" not in log and "KeyboardInterrupt" not in log and "error:" not in log
    assert is_complete(out / f"checkpoint-{stopped}") and not (out / "run_manifest.json").exists()

    result = run_script("sft.py", "--config", tmp_path / "r.yaml")  # the same recipe (the launcher's part is above)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"resuming from {out / f'checkpoint-{stopped}'}" in result.stdout
    assert "missing keys" not in result.stdout + result.stderr  # lm_head is tied to the embeddings: not saved
    assert_same_losses(out, uninterrupted[0])
    # the mean loss over the run is the whole run's, not the resumed steps' (the Trainer's own after a resume)
    resumed, whole = (json.loads((path / "train_results.json").read_text()) for path in (out, uninterrupted[0]))
    assert resumed["train_loss"] == pytest.approx(whole["train_loss"], rel=1e-9)  # the same losses, summed in 2 parts
    assert resumed["train_loss_this_session"] != pytest.approx(whole["train_loss"], rel=1e-3)
    assert f"(mean over the run {resumed['train_loss']:.4f})" in (out / "README.md").read_text(encoding="utf-8")


def test_a_second_training_into_the_same_output_dir_is_refused(tiny_llama, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    with exclusive_output(out):  # another run holds it (this process, through its own open file)
        result = run_in_this_process(
            monkeypatch, capsys, "sft.py", "--config", recipe(tmp_path / "r.yaml", tiny_llama, out)
        )
    assert_one_error_line(result, f"{out}: in use by process {os.getpid()} on ")
    assert not out.exists()  # nothing written


def test_refused_runs_leave_no_folder_behind(tiny_llama, tmp_path, monkeypatch, capsys):
    out = tmp_path / "results" / "r" / "model"
    path = recipe(tmp_path / "r.yaml", tiny_llama, out)
    result = run_in_this_process(
        monkeypatch, capsys, "sft.py", "--config", path, "--train_file", tmp_path / "missing.csv"
    )
    assert_one_error_line(result, "missing.csv")
    predictions = tmp_path / "results" / "r" / "predictions_test.csv"
    result = run_in_this_process(
        monkeypatch,
        capsys,
        "generate.py",
        "--config",
        path,
        "--test_path",
        SAMPLE_FILES["proverbs"],
        "--out_path",
        predictions,
    )
    assert_one_error_line(result, "train it first")
    assert sorted(tmp_path.iterdir()) == [tmp_path / "r.yaml"]  # no results/, no lock file


def test_outputs_keep_the_users_umask(tmp_path):
    import os

    from arabic_sft.runtime.manifest import atomic_path, write_json_atomic

    previous = os.umask(0o022)
    try:
        write_json_atomic(tmp_path / "shared.json", {"a": 1})
        with atomic_path(tmp_path / "table.csv") as temporary:
            temporary.write_text("a\n", encoding="utf-8")
        os.umask(0o077)
        write_json_atomic(tmp_path / "private.json", {"a": 1})
    finally:
        os.umask(previous)
    modes = {name: (tmp_path / name).stat().st_mode & 0o777 for name in ("shared.json", "table.csv", "private.json")}
    assert modes == {"shared.json": 0o644, "table.csv": 0o644, "private.json": 0o600}


def test_changed_files_are_those_whose_sha256_differs_from_the_manifests(tmp_path):
    from arabic_sft.runtime.manifest import changed_files

    same, edited, unrecorded = (tmp_path / name for name in ("same.csv", "edited.csv", "unrecorded.csv"))
    for path in (same, edited, unrecorded):
        path.write_text("q,a\n1,2\n", encoding="utf-8")
    manifest = {"data_sha256": {str(same): sha256(same), str(edited): sha256(edited)}}
    edited.write_text("q,a\n1,2\n3,4\n", encoding="utf-8")  # a row appended after the run
    paths = [str(same), str(edited), str(unrecorded), None, str(tmp_path / "gone.csv")]
    assert changed_files(manifest, paths) == [str(edited)]
    assert changed_files(None, paths) == []
