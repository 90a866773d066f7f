"""The project's accelerate configs on this CPU machine: DDP (gloo) and DeepSpeed ZeRO-2/3, each with two
processes, train the tiny model like one plain process with the same global batch, and what they save loads with
from_pretrained.

What must change for a CPU is passed as launch overrides (`--num_processes`, `--mixed_precision no`), never a copy of
the config files."""

import json
import time
from pathlib import Path

import pytest
import torch
from helpers import cpu_recipe, launch, run_here, run_script
from transformers import AutoModelForCausalLM


pytestmark = pytest.mark.slow  # make test-fast skips this file


def recipe(path: Path, model: Path, output_dir: Path, batch_size: int) -> Path:
    return cpu_recipe(path, model, output_dir=str(output_dir), num_train_epochs=2,
                      per_device_train_batch_size=batch_size, learning_rate=1e-3, logging_steps=1, seed=0)  # fmt: skip


def losses(output_dir: Path) -> list[float]:
    state = json.loads((output_dir / "trainer_state.json").read_text(encoding="utf-8"))
    return [entry["loss"] for entry in state["log_history"] if "loss" in entry]


def weights(output_dir: Path) -> dict[str, torch.Tensor]:
    return {
        name: value.float() for name, value in AutoModelForCausalLM.from_pretrained(output_dir).state_dict().items()
    }


@pytest.fixture(scope="module")
def single_process(tiny_llama, tmp_path_factory):
    """The reference: one plain process, 4 examples a step (the global batch of every launch below)."""
    work = tmp_path_factory.mktemp("single")
    assert (
        run_here("sft.py", "--config", recipe(work / "r.yaml", tiny_llama, work / "out", batch_size=4)).returncode == 0
    )
    return work / "out"


def assert_same_training(output_dir: Path, reference: Path):
    assert losses(output_dir) == pytest.approx(losses(reference), rel=1e-4)
    trained, expected = weights(output_dir), weights(reference)
    assert trained.keys() == expected.keys()
    for name in expected:
        torch.testing.assert_close(trained[name], expected[name], rtol=1e-4, atol=1e-5, msg=name)


@pytest.fixture(scope="module")
def two_processes(tiny_llama, tmp_path_factory):
    """One launcher with two CPU processes, 2 examples each a step (the global batch of the single process), per
    launch config, run once for this file: config -> (the launch's result, its output_dir)."""
    runs = {}

    def run(config: str):
        if config not in runs:
            work = tmp_path_factory.mktemp(f"two-processes-{config}")
            result = launch(config, 2, recipe(work / "r.yaml", tiny_llama, work / "out", batch_size=2))
            runs[config] = (result, work / "out")
        return runs[config]

    return run


@pytest.mark.parametrize(
    "config, distributed_type",
    # fsdp.yaml is not here: on a CPU, accelerate turns an FSDP launch into plain multi-CPU data parallel. ZeRO-2 is
    # in the machines tier, where its run is also the two-machine test's reference (one launch for both in CI).
    [("ddp", "MULTI_CPU"), pytest.param("zero2", "DEEPSPEED", marks=pytest.mark.machines), ("zero3", "DEEPSPEED")],
)
def test_two_processes_train_like_one_with_the_same_global_batch(
    config, distributed_type, single_process, two_processes
):
    result, output_dir = two_processes(config)
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads((output_dir / "run_manifest.json").read_text(encoding="utf-8"))
    assert manifest["config"]["launch"] == {
        "num_processes": 2,
        "distributed_type": distributed_type,
        "global_batch_size": 4,
    }
    assert result.stdout.count("{'loss':") == 6  # 12 examples / 4 a step x 2 epochs: both ranks took their half
    assert_same_training(output_dir, single_process)  # and the saved model loads with from_pretrained


QLORA = [
    "--load_in_4bit",
    "true",
    "--bnb_4bit_quant_type",
    "nf4",
    "--use_bnb_nested_quant",
    "true",
    "--use_peft",
    "true",
    "--lora_target_modules",
    "all-linear",
    "--dtype",
    "float32",
]


def test_qlora_under_zero3_stores_4bit_weights_in_the_dtype_and_trains_like_one_process(
    tiny_llama, tmp_path, script_in_process
):
    single = script_in_process(
        "sft.py", "--config", recipe(tmp_path / "one.yaml", tiny_llama, tmp_path / "one", 4), *QLORA
    )
    assert single.returncode == 0, single.stderr[-3000:]
    sharded = launch("zero3", 2, recipe(tmp_path / "two.yaml", tiny_llama, tmp_path / "two", 2), *QLORA)
    assert sharded.returncode == 0, sharded.stderr[-3000:]
    manifest = json.loads((tmp_path / "two" / "run_manifest.json").read_text(encoding="utf-8"))
    assert manifest["config"]["model"]["bnb_4bit_quant_storage"] == "float32"  # set from dtype for ZeRO-3
    assert (tmp_path / "two" / "adapter_model.safetensors").is_file()
    assert losses(tmp_path / "two") == pytest.approx(losses(tmp_path / "one"), rel=1e-3)
    merged = run_script("merge_adapter.py", "--adapter_dir", tmp_path / "two", "--out", tmp_path / "merged")
    assert merged.returncode == 0, merged.stderr[-3000:]
    assert AutoModelForCausalLM.from_pretrained(tmp_path / "merged").num_parameters() > 0


def test_qlora_under_zero3_stores_4bit_weights_in_the_dtype_returning_a_new_model_config():
    from types import SimpleNamespace

    from trl import ModelConfig

    from arabic_sft.runtime.errors import UserError
    from arabic_sft.training.model import model_loading

    zero3 = SimpleNamespace(
        deepspeed_plugin=SimpleNamespace(zero_stage=3),
        distributed_state=SimpleNamespace(distributed_type="DEEPSPEED"),
        trust_remote_code=False,
    )
    model = ModelConfig(model_name_or_path="m", load_in_4bit=True, dtype="float32")
    kwargs, used = model_loading(model, zero3)
    assert used.bnb_4bit_quant_storage == "float32" and kwargs["device_map"] is None
    assert model.bnb_4bit_quant_storage is None  # the recipe's own config is left as it is
    with pytest.raises(UserError, match="bnb_4bit_quant_storage is uint8 but dtype is float32"):
        model_loading(ModelConfig(model_name_or_path="m", load_in_4bit=True, dtype="float32",
                                  bnb_4bit_quant_storage="uint8"), zero3)  # fmt: skip


def launch_machines(config: str, recipe_path: Path, port: int, logs: Path, *overrides: str) -> list:
    """Two machines on this host: two launchers (`--num_machines 2 --machine_rank 0|1`, one CPU process each) meeting
    at 127.0.0.1 through torch's c10d rendezvous, as train_multinode.sbatch starts one per node: rank 0 hosts the
    rendezvous store (`is_host`, as the sbatch script says; on one host both would match the address), so both
    start at once. Their output goes to logs/machine-R.log (a pipe read one machine after the other would fill and
    stall both)."""
    import os
    import subprocess
    import sys

    from helpers import ROOT

    def command(rank: int) -> list[str]:
        return [sys.executable, "-m", "arabic_sft.training.launch",
                "--config_file", str(ROOT / "accelerate_configs" / f"{config}.yaml"),
                "--num_machines", "2", "--num_processes", "2", "--machine_rank", str(rank),
                "--main_process_ip", "127.0.0.1", "--main_process_port", str(port), "--rdzv_backend", "c10d",
                "--rdzv_conf", f"is_host={int(rank == 0)}",
                "--mixed_precision", "no", str(ROOT / "scripts" / "sft.py"), "--config", str(recipe_path),
                *overrides]  # fmt: skip

    environment = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    logs.mkdir(parents=True, exist_ok=True)
    return [
        subprocess.Popen(
            command(rank),
            cwd=ROOT,
            stdout=(logs / f"machine-{rank}.log").open("w"),
            stderr=subprocess.STDOUT,
            env=environment,
        )  # fmt: skip
        for rank in (0, 1)
    ]


def wait_for_machines(machines: list, logs: Path) -> None:
    """Both machines end with status 0 (else the failing one's log is shown); none is left running either way."""
    try:
        for rank, machine in enumerate(machines):
            assert machine.wait(timeout=600) == 0, (logs / f"machine-{rank}.log").read_text()[-3000:]
    finally:  # a machine left waiting for the other would hold its port and CPU
        end_machines(machines)


def end_machines(machines: list) -> None:
    """Kill each machine: its launcher and every process under it (torch's agent starts the training processes in
    sessions of their own, so a process group would not reach them)."""
    import psutil

    for machine in machines:
        try:
            processes = [psutil.Process(machine.pid), *psutil.Process(machine.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            processes = []
        for process in processes:
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass
        machine.wait()


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def long_recipe(folder: Path, model: Path, name: str, **fields) -> Path:
    """10 epochs of 3 steps (2 machines x 2 rows): time to be stopped in the middle; output in folder/name."""
    return cpu_recipe(folder / f"{name}.yaml", model, output_dir=str(folder / name), num_train_epochs=10,
                      per_device_train_batch_size=2, learning_rate=1e-3, logging_steps=1, seed=0,
                      **fields)  # fmt: skip


@pytest.fixture(scope="module")
def long_reference(tiny_llama, tmp_path_factory) -> Path:
    """The uninterrupted long run, one launcher with two processes: the losses every stopped run must resume to."""
    work = tmp_path_factory.mktemp("long-reference")
    result = launch("ddp", 2, long_recipe(work, tiny_llama, "reference"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(losses(work / "reference")) == 30
    return work / "reference"


def wait_for_losses(log: Path, count: int, process) -> None:
    """Until the log holds `count` logged losses (or the process ended, or 300 s passed)."""
    deadline = time.monotonic() + 300
    while log.read_text().count("{'loss':") < count and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)


@pytest.mark.machines
@pytest.mark.parametrize("config", ["ddp", "zero2"])
def test_two_machines_on_this_host_train_exactly_like_one_launcher_with_two_processes(
    config, tiny_llama, two_processes, tmp_path
):
    one, reference = two_processes(config)
    assert one.returncode == 0, one.stderr[-3000:]
    machines = launch_machines(config, recipe(tmp_path / "two.yaml", tiny_llama, tmp_path / "two", batch_size=2),
                               free_port(), tmp_path)  # fmt: skip
    wait_for_machines(machines, tmp_path)
    two = tmp_path / "two"
    assert losses(two) == losses(reference) and len(losses(two)) == 6  # exactly: the same seed, the same batches
    print(f"{config}: two machines' losses {losses(two)} = one launcher's {losses(reference)}")
    # written once, by machine 0's process, and complete: the model loads, the manifest names the launch
    manifest = json.loads((two / "run_manifest.json").read_text(encoding="utf-8"))
    assert manifest["config"]["launch"]["num_processes"] == 2 and "finished" in manifest
    assert sorted(path.name for path in two.iterdir()) == sorted(path.name for path in reference.iterdir())
    logs = [(tmp_path / f"machine-{rank}.log").read_text() for rank in (0, 1)]
    assert sum(log.count("saved the trained model") for log in logs) == 1
    assert AutoModelForCausalLM.from_pretrained(two).num_parameters() > 0


@pytest.mark.machines
def test_sigterm_to_one_machine_stops_both_at_one_step_with_one_checkpoint_and_the_same_commands_resume(
    tiny_llama, long_reference, tmp_path
):
    import re
    import signal

    machines = launch_machines("ddp", long_recipe(tmp_path, tiny_llama, "two"), free_port(), tmp_path / "first")
    try:
        wait_for_losses(tmp_path / "first" / "machine-1.log", 5, machines[1])
        machines[1].send_signal(signal.SIGTERM)  # machine 1's launcher only
        codes = [machine.wait(timeout=300) for machine in machines]
    finally:
        end_machines(machines)
    logs = [(tmp_path / "first" / f"machine-{rank}.log").read_text() for rank in (0, 1)]
    assert codes[1] == 143 and codes[0] != 0, logs[0][-2000:]
    stops = re.findall(r"stopped by SIGTERM after step (\d+)", "".join(logs))
    assert len(stops) == 1, logs  # said once, by the main process, for both machines
    checkpoints = sorted(path.name for path in (tmp_path / "two").glob("checkpoint-*"))
    assert checkpoints == [f"checkpoint-{stops[0]}"] and 0 < int(stops[0]) < 30
    assert (tmp_path / "two" / checkpoints[0] / "trainer_state.json").is_file()  # complete: written last

    again = launch_machines("ddp", long_recipe(tmp_path, tiny_llama, "two"), free_port(), tmp_path / "again")
    wait_for_machines(again, tmp_path / "again")
    assert losses(tmp_path / "two") == losses(long_reference)
    print(f"stopped after step {stops[0]} of 30; resumed losses equal the uninterrupted run's 30")


@pytest.mark.machines
@pytest.mark.parametrize("how", ["SIGKILL", "SIGSTOP"])
def test_a_machine_killed_or_frozen_ends_the_other_in_one_line_and_the_next_start_resumes(
    how, tiny_llama, long_reference, tmp_path
):
    """SIGKILL to machine 1 (its launcher and its process, as when a machine dies): machine 0's process sees the
    connection close; SIGSTOP (a machine that hangs, its connections open): machine 0 waits ddp_timeout. Either way
    it ends by itself in one line, status 75, and the same two commands resume from the last complete checkpoint."""
    import re
    import signal

    import psutil

    two = long_recipe(tmp_path, tiny_llama, "two", save_strategy="steps", save_steps=3, ddp_timeout=20)
    machines = launch_machines("ddp", two, free_port(), tmp_path / "first")
    try:
        wait_for_losses(tmp_path / "first" / "machine-1.log", 5, machines[1])
        machine = psutil.Process(machines[1].pid)
        for process in [machine, *machine.children(recursive=True)]:
            process.send_signal(getattr(signal, how))
        started = time.monotonic()
        code = machines[0].wait(timeout=20 + 100)  # ddp_timeout and more: a hang fails here
        waited = time.monotonic() - started
    finally:
        end_machines(machines)
    log = (tmp_path / "first" / "machine-0.log").read_text()
    assert code == 75, log[-3000:]
    said = [line for line in log.splitlines() if re.search(r"error|Traceback|Error", line)]
    # gloo's own words for it (a closed connection, a timeout: training.launch.lost_contact reads them) are not
    # asserted here: the status, our one line and the checkpoint it names are what a user and a scheduler act on
    assert len(said) == 1 and said[0].startswith("error: lost another process of this 2-process run after step"), said
    step, checkpoint = re.search(r"after step (\d+) .* resumes from (\S+)$", said[0]).groups()
    assert (Path(checkpoint) / "trainer_state.json").is_file()  # complete: written last
    assert Path(checkpoint).parent == tmp_path / "two" and 3 <= int(checkpoint.split("-")[-1]) <= int(step)
    print(f"{how}: machine 0 ended by itself {waited:.1f} s after; {said[0]}")
    if how == "SIGKILL":  # the next start resumes from that checkpoint to the uninterrupted losses
        wait_for_machines(launch_machines("ddp", two, free_port(), tmp_path / "again"), tmp_path / "again")
        assert f"resuming from {checkpoint}" in (tmp_path / "again" / "machine-0.log").read_text()
        assert losses(tmp_path / "two") == losses(long_reference)


# The sbatch scripts under a real Slurm: two nodes on this host (the slurm fixture), CPU settings as variables.
CPU_NODES = {"GPUS_PER_NODE": "1", "LAUNCH_ARGS": "--mixed_precision no"}


@pytest.mark.machines
def test_train_multinode_sbatch_on_two_slurm_nodes_trains_exactly_like_make_train(
    slurm, tiny_llama, two_processes, tmp_path
):
    from helpers import sbatch, wait_for_job

    _, reference = two_processes("ddp")
    trained = recipe(tmp_path / "r.yaml", tiny_llama, tmp_path / "out", 2)
    job = sbatch(slurm, "train_multinode.sbatch", trained, "ddp", options=["--nodes=2", f"--output={tmp_path}/j.out"],
                 env={**CPU_NODES, "MAIN_PORT": str(free_port())})  # fmt: skip
    states = wait_for_job(slurm, job)
    log = (tmp_path / "j.out").read_text()
    assert states == ["COMPLETED"], log[-3000:]
    assert losses(tmp_path / "out") == losses(reference)  # exactly: one node per machine, the same batches
    assert log.count("saved the trained model") == 1 and "finished" in json.loads(
        (tmp_path / "out" / "run_manifest.json").read_text(encoding="utf-8"))  # fmt: skip
    print(f"Slurm job {job} on 2 nodes: losses {losses(tmp_path / 'out')} = make train's with 2 processes")


@pytest.mark.machines
def test_train_multinode_sbatch_signalled_before_its_time_limit_checkpoints_requeues_and_resumes(
    slurm, tiny_llama, long_reference, tmp_path
):
    import re
    import subprocess

    from helpers import requeued_state, sbatch, slurm_environment, wait_for_job

    log = tmp_path / "job.out"
    job = sbatch(slurm, "train_multinode.sbatch", long_recipe(tmp_path, tiny_llama, "two"), "ddp",
                 options=["--nodes=2", f"--output={log}"],
                 env={**CPU_NODES, "MAIN_PORT": str(free_port())})  # fmt: skip
    deadline = time.monotonic() + 300
    while not (log.is_file() and log.read_text().count("{'loss':") >= 5) and time.monotonic() < deadline:
        time.sleep(0.2)
    # what --signal=B:USR1@300 sends 5 minutes before the time limit: USR1 to the batch script only
    subprocess.run(["scancel", "--signal=USR1", "--batch", job], env=slurm_environment(slurm), check=True)
    # requeued by the script, and waiting: the old credential keeps it pending (local_cluster.py: cred_expire 15 s)
    assert requeued_state(slurm, job) == "PENDING", log.read_text()[-3000:]
    stops = re.findall(r"stopped by SIGTERM after step (\d+)", log.read_text())
    assert len(stops) == 1, log.read_text()[-3000:]
    assert sorted(path.name for path in (tmp_path / "two").glob("checkpoint-*")) == [f"checkpoint-{stops[0]}"]
    # the requeued job starts by itself once the old credential has expired (local_cluster.py: cred_expire 15 s)
    assert wait_for_job(slurm, job) == ["COMPLETED"], log.read_text()[-3000:]
    assert f"resuming from {tmp_path / 'two'}/checkpoint-{stops[0]}" in log.read_text()
    assert losses(tmp_path / "two") == losses(long_reference)
    print(f"Slurm job {job}: USR1, stopped after step {stops[0]}, requeued, resumed to the uninterrupted 30 losses")
