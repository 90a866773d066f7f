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
    # fsdp.yaml is not here: on a CPU, accelerate turns an FSDP launch into plain multi-CPU data parallel.
    [("ddp", "MULTI_CPU"), ("zero2", "DEEPSPEED"), ("zero3", "DEEPSPEED")],
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
    at 127.0.0.1 through torch's c10d rendezvous, as train_multinode.sbatch starts one per node. Their output goes to
    logs/machine-R.log (a pipe read one machine after the other would fill and stall both)."""
    import os
    import subprocess
    import sys

    from helpers import ROOT

    def command(rank: int) -> list[str]:
        return [sys.executable, "-m", "arabic_sft.training.launch",
                "--config_file", str(ROOT / "accelerate_configs" / f"{config}.yaml"),
                "--num_machines", "2", "--num_processes", "2", "--machine_rank", str(rank),
                "--main_process_ip", "127.0.0.1", "--main_process_port", str(port), "--rdzv_backend", "c10d",
                "--mixed_precision", "no", str(ROOT / "scripts" / "sft.py"), "--config", str(recipe_path),
                *overrides]  # fmt: skip

    environment = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    logs.mkdir(parents=True, exist_ok=True)

    def start(rank: int) -> subprocess.Popen:
        return subprocess.Popen(command(rank), cwd=ROOT, stdout=(logs / f"machine-{rank}.log").open("w"),
                                stderr=subprocess.STDOUT, env=environment)  # fmt: skip

    # Machine 0 first, machine 1 once machine 0's rendezvous store listens: on one host both launchers take
    # 127.0.0.1 for their own address and would race to host the store (on a cluster only the main node matches).
    first = start(0)
    deadline = time.monotonic() + 120
    while not listening(port) and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    return [first, start(1)]


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def listening(port: int) -> bool:
    import socket

    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.machines
@pytest.mark.parametrize("config", ["ddp", "zero2"])
def test_two_machines_on_this_host_train_exactly_like_one_launcher_with_two_processes(
    config, tiny_llama, two_processes, tmp_path
):
    one, reference = two_processes(config)
    assert one.returncode == 0, one.stderr[-3000:]
    machines = launch_machines(config, recipe(tmp_path / "two.yaml", tiny_llama, tmp_path / "two", batch_size=2),
                               free_port(), tmp_path)  # fmt: skip
    try:
        for rank, machine in enumerate(machines):
            assert machine.wait(timeout=600) == 0, (tmp_path / f"machine-{rank}.log").read_text()[-3000:]
    finally:  # a machine left waiting for the other would hold its port and CPU
        for machine in machines:
            machine.kill()
            machine.wait()
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
    tiny_llama, tmp_path
):
    import re
    import signal

    def long_recipe(name: str) -> Path:  # 30 epochs of 3 steps: time to be stopped in the middle
        return cpu_recipe(tmp_path / f"{name}.yaml", tiny_llama, output_dir=str(tmp_path / name), num_train_epochs=30,
                          per_device_train_batch_size=2, learning_rate=1e-3, logging_steps=1, seed=0)  # fmt: skip

    reference = launch("ddp", 2, long_recipe("reference"))
    assert reference.returncode == 0, reference.stderr[-3000:]
    port = free_port()
    machines = launch_machines("ddp", long_recipe("two"), port, tmp_path / "first")
    try:
        log = tmp_path / "first" / "machine-1.log"
        deadline = time.monotonic() + 300
        while log.read_text().count("{'loss':") < 5 and machines[1].poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        machines[1].send_signal(signal.SIGTERM)  # machine 1's launcher only
        codes = [machine.wait(timeout=300) for machine in machines]
    finally:
        for machine in machines:
            machine.kill()
            machine.wait()
    logs = [(tmp_path / "first" / f"machine-{rank}.log").read_text() for rank in (0, 1)]
    assert codes[1] == 143 and codes[0] != 0, logs[0][-2000:]
    stops = re.findall(r"stopped by SIGTERM after step (\d+)", "".join(logs))
    assert len(stops) == 1, logs  # said once, by the main process, for both machines
    checkpoints = sorted(path.name for path in (tmp_path / "two").glob("checkpoint-*"))
    assert checkpoints == [f"checkpoint-{stops[0]}"] and 0 < int(stops[0]) < 90
    assert (tmp_path / "two" / checkpoints[0] / "trainer_state.json").is_file()  # complete: written last

    resumed = launch_machines("ddp", long_recipe("two"), free_port(), tmp_path / "again")
    try:
        for rank, machine in enumerate(resumed):
            assert machine.wait(timeout=600) == 0, (tmp_path / "again" / f"machine-{rank}.log").read_text()[-3000:]
    finally:
        for machine in resumed:
            machine.kill()
            machine.wait()
    assert losses(tmp_path / "two") == losses(tmp_path / "reference") and len(losses(tmp_path / "reference")) == 90
    print(f"stopped after step {stops[0]} of 90; resumed losses equal the uninterrupted run's 90")
