"""generate.py under `accelerate launch` with 2 CPU processes (gloo): each generates a disjoint share, the main process
writes the same file as one process would, and a killed launch is completed by a rerun with any number of processes."""

import json
import signal
import subprocess
import sys
import time

import psutil
import pytest
from helpers import OPTIONS, ROOT, generate_command, run_script

from arabic_sft.runtime.partial import partial_paths, read_done


pytestmark = pytest.mark.slow  # make test-fast skips this file


def launch_command(model, test_path, out, *extra, processes: int = 2) -> list[str]:
    return [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(ROOT / "accelerate_configs" / "ddp.yaml"),
        "--num_processes",
        str(processes),
        "--mixed_precision",
        "no",
        "--main_process_port",
        "0",  # a free port: the suite runs two test files at a time
        *generate_command(model, test_path, out, *OPTIONS, *extra)[1:],
    ]


def test_two_processes_write_the_file_one_process_writes(tiny_llama, long_generation, tmp_path):
    test_path, reference = long_generation
    out = tmp_path / "two.csv"
    # --overwrite: every process passes the existing-output check, the main one clears old partial files first
    result = subprocess.run(
        launch_command(tiny_llama, test_path, out, "--overwrite"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert out.read_bytes() == reference.read_bytes()  # byte for byte: every row once, in input order
    settings = json.loads(out.with_suffix(".manifest.json").read_text(encoding="utf-8"))["config"]["generation"]
    assert settings["num_processes"] == 2 and len(settings["rows_per_process"]) == 2
    assert sum(settings["rows_per_process"]) == 48 and min(settings["rows_per_process"]) > 0
    assert "48/48" in result.stderr and result.stdout.count("wrote 48 predictions") == 1  # one bar, all rows
    assert not partial_paths(out)


def ended(process: psutil.Process) -> bool:
    """Gone, or a zombie (dead: its parent, the killed launcher, cannot reap it)."""
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_killed_launch_is_completed_by_one_process(tiny_llama, long_generation, tmp_path):
    test_path, reference = long_generation
    out = tmp_path / "killed.csv"
    launcher = subprocess.Popen(
        launch_command(tiny_llama, test_path, out), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 300
    while time.time() < deadline and launcher.poll() is None and len(read_done(out)) < 8:
        time.sleep(0.05)
    assert launcher.poll() is None, "the launch ended before it could be killed"
    processes = psutil.Process(launcher.pid).children(recursive=True)
    launcher.send_signal(signal.SIGKILL)  # the launcher only: its processes die with it (PR_SET_PDEATHSIG)
    launcher.wait()
    while time.time() < deadline and not all(map(ended, processes)):  # by their pids, not for a while
        time.sleep(0.05)
    assert all(map(ended, processes))
    written = len(read_done(out))
    assert 8 <= written < 48 and not out.exists()
    assert len(partial_paths(out)) == 2  # both processes had saved rows

    result = run_script("generate.py", *generate_command(tiny_llama, test_path, out, *OPTIONS)[2:])
    assert result.returncode == 0, result.stderr[-2000:]
    assert out.read_bytes() == reference.read_bytes()
    settings = json.loads(out.with_suffix(".manifest.json").read_text(encoding="utf-8"))["config"]["generation"]
    assert settings["num_processes"] == 1 and settings["rows_per_process"][0] <= 48 - written + 2 * 2  # only the rest
