"""What can be checked of a training launch before its processes start, checked once, in one line each.

`make train` runs this module: it reads the recipe, takes the accelerate config the recipe names (`accelerate_config`)
unless `--config_file` gives one, checks the recipe against this machine and that config, fills in one process per
GPU of this machine, then hands over to `accelerate launch`, whose own traceback on a failed process it turns into
one line. `scripts/sft.py` runs the same recipe checks in each process when started by a bare `accelerate launch`
(only the main process reports them).

    python -m arabic_sft.training.launch [--config_file accelerate_configs/zero2.yaml] [accelerate flags] \\
        scripts/sft.py --config recipes/allam_proverbs.yaml [recipe overrides]
"""

import logging
import os
import re
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import psutil
import torch
import yaml
from torch.distributed.elastic.multiprocessing.api import SignalException
from transformers.utils import is_torch_bf16_gpu_available

from arabic_sft.recipe import Recipe, load_recipe
from arabic_sft.recipe.check import precision_refusal, recipe_precision
from arabic_sft.runtime.errors import LostContact, UserError, run_cli
from arabic_sft.runtime.stopping import EXIT_INTERRUPTED, EXIT_STOPPED
from arabic_sft.training.model import check_sharded_4bit_storage


# gloo's words when another process is gone (its connection closed), and when it stopped answering: the operation
# waiting on it timed out, or another one did first and closed the connection ("Application timeout caused pair
# closure").
CONNECTION_CLOSED = (
    "Connection closed by peer", "Connection reset by peer", "Remote peer closed the connection", "Socket closed",
    "Broken pipe",
)  # fmt: skip
NO_ANSWER = ("Timed out waiting", "Application timeout caused pair closure")


def lost_contact(error: BaseException) -> str | None:
    """What a failed step says when another process of the run is gone or stopped answering (None for any other
    error): torch's distributed errors, and gloo's, which torch raises as plain RuntimeErrors — matched by their words
    (`CONNECTION_CLOSED`, `NO_ANSWER`: gloo's TCP pair errors, read from libtorch_cpu.so's strings, and the system's
    socket errors), gloo giving no type of its own."""
    words = (*CONNECTION_CLOSED, *NO_ANSWER, "NCCL")
    if not isinstance(error, torch.distributed.DistError) and not (
        isinstance(error, RuntimeError) and any(word in str(error) for word in words)
    ):
        return None
    first = re.sub(r"^\[[^\]]*\]\s*", "", (str(error).strip().splitlines() or [""])[0])  # gloo's "[file.cc:553] "
    return f"{type(error).__name__}: {first.split('. ')[0].rstrip('.')}"


def wait_for_lost_processes(seconds: float) -> None:
    """How long a process of a multi-process run waits for another that stopped answering (`ddp_timeout`):
    transformers passes it for GPUs and DeepSpeed but not when it sets up CPU processes (gloo would wait its default
    30 minutes), so it is set on the process group made; torch's one call for that is `_set_pg_timeout`."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.distributed_c10d._set_pg_timeout(timedelta(seconds=seconds))


# Configs whose processes are one per GPU (each config file says 8; the machine decides).
PER_GPU = {"MULTI_GPU", "DEEPSPEED", "FSDP"}


def fit_to_machine(recipe: Recipe, launch_config_given: bool = False) -> str | None:
    """Precision and launch config for a recipe that names none, chosen for this machine: the CPU in fp32 without a
    GPU; bf16 mixed precision where the GPU has it (else fp32); one process per GPU. Returns the line that says what
    was chosen (None when the recipe chose everything)."""
    fields, explicit = recipe.fields, recipe.explicit
    gpus = torch.cuda.device_count()
    chosen = {}
    if not {"bf16", "fp16"} & explicit:  # a recipe that names its precision keeps it (and is checked below)
        if "use_cpu" not in explicit and not gpus:
            chosen["use_cpu"] = True
        chosen["bf16"] = not (chosen.get("use_cpu") or fields.use_cpu) and is_torch_bf16_gpu_available()
    use_cpu = chosen.get("use_cpu", fields.use_cpu)
    if fields.accelerate_config is None and not launch_config_given:
        chosen["accelerate_config"] = "cpu" if use_cpu or not gpus else "single_gpu" if gpus == 1 else "ddp"
    if not chosen:
        return None
    recipe.choose(chosen)
    said = []
    if "bf16" in chosen or "use_cpu" in chosen:
        said.append(("bf16 mixed precision" if fields.bf16 else "fp32") + (" on the CPU" if use_cpu else ""))
    if "accelerate_config" in chosen:
        processes = "one process" if use_cpu or gpus < 2 else f"{gpus} processes, one per GPU"
        said.append(f"accelerate_configs/{fields.accelerate_config}.yaml ({processes})")
    machine = f"{gpus} x {torch.cuda.get_device_name(0)}" if gpus else "no GPU"
    unset = " or ".join(
        what
        for what, names in (("precision", {"bf16", "use_cpu"}), ("launch config", {"accelerate_config"}))
        if names & set(chosen)
    )
    return f"{recipe.source} names no {unset}: chose {' and '.join(said)} for this machine ({machine})"


def as_overrides(recipe: Recipe, names) -> list[str]:
    """`--FIELD VALUE` arguments that set `names` to the recipe's values (for the launched processes)."""
    overrides = []
    for name in names:
        value = getattr(recipe.fields, name)
        overrides += [f"--{name}", str(value).lower() if isinstance(value, bool) else str(value)]
    return overrides


def check_recipe_on_this_machine(recipe: Recipe) -> None:
    """The recipe's precision is one this machine can run (what `SFTConfig` would refuse in every process)."""
    if refusal := precision_refusal(recipe.source, recipe.fields, torch.cuda.is_available(),
                                    is_torch_bf16_gpu_available()):  # fmt: skip
        raise UserError(refusal)


def check_launch_precision(recipe: Recipe, launch_precision: str | None, launch: str) -> None:
    """The launcher's mixed precision and the recipe's are the same (DeepSpeed refuses a difference in every rank)."""
    precision = recipe_precision(recipe.fields)
    if launch_precision not in (None, precision):
        raise UserError(
            f"{launch} says mixed_precision {launch_precision} but {recipe.source} means mixed_precision "
            f"{precision} (bf16: {str(precision == 'bf16').lower()}, fp16: {str(precision == 'fp16').lower()}): "
            f'make them agree (accelerate: --mixed_precision {precision}; make train: LAUNCH_ARGS="--mixed_precision '
            f'{precision}"; or change bf16/fp16 in the recipe)'
        )


def check_in_process(recipe: Recipe) -> None:
    """The checks above in a training process, from the recipe and what `accelerate launch` put in the environment
    (after choosing for this machine what the recipe leaves unset, said by the main process)."""
    launched = "ACCELERATE_MIXED_PRECISION" in os.environ  # under accelerate launch: the launch config is chosen
    if (chosen := fit_to_machine(recipe, launch_config_given=launched)) and os.environ.get("RANK", "0") == "0":
        print(chosen)
    check_recipe_on_this_machine(recipe)
    check_launch_precision(recipe, os.environ.get("ACCELERATE_MIXED_PRECISION"), "the accelerate launch")


def recipe_launch_config(recipe: Recipe) -> str:
    """The accelerate config file the recipe names (`accelerate_config: NAME` -> accelerate_configs/NAME.yaml)."""
    path = Path("accelerate_configs") / f"{recipe.args.accelerate_config}.yaml"
    if not path.is_file():
        raise UserError(f"{recipe.source}: accelerate_config {recipe.args.accelerate_config}: {path} not found")
    return str(path)


def launch_settings(args) -> dict:
    """The accelerate config file's settings, with the launch flags that override them."""
    config = yaml.safe_load(Path(args.config_file).read_text(encoding="utf-8")) if args.config_file else {}
    return {
        "distributed_type": config.get("distributed_type", "NO"),
        "use_cpu": args.cpu or bool(config.get("use_cpu")),
        "mixed_precision": args.mixed_precision or config.get("mixed_precision", "no"),
        "num_machines": args.num_machines or config.get("num_machines", 1),
        "main_process_port": args.main_process_port or config.get("main_process_port"),
        # ZeRO-3 and FSDP shard the weights themselves (4-bit ones too)
        "shards_weights": config.get("distributed_type") == "FSDP"
        or (
            config.get("distributed_type") == "DEEPSPEED"
            and (config.get("deepspeed_config") or {}).get("zero_stage") == 3
        ),
    }


def check_and_fill_processes(args, settings: dict, gpus: int) -> None:
    """One process per GPU of this machine unless `--num_processes` is given; never more processes than GPUs."""
    config = args.config_file or "the launch"
    per_node = None if args.num_processes is None else args.num_processes // settings["num_machines"]
    if settings["use_cpu"] or settings["distributed_type"] not in PER_GPU:
        return
    if gpus == 0 and per_node is None:
        raise UserError(
            f"{config} starts one process per GPU and this machine has none: on a CPU use ACCELERATE_CONFIG=cpu, or "
            'LAUNCH_ARGS="--num_processes N --mixed_precision no" for N CPU processes'
        )
    if gpus and per_node is not None and per_node > gpus:
        raise UserError(
            f"--num_processes {args.num_processes}: {per_node} processes per machine but this machine has "
            f"{gpus} GPU(s)"
        )
    if per_node is None:
        args.num_processes = gpus * settings["num_machines"]


def checked_launch(argv: list[str]):
    """`accelerate launch argv`'s arguments, checked against the recipe and this machine, with what the recipe and
    the machine choose filled in (launch config, precision, processes, threads, port)."""
    from accelerate.commands.launch import launch_command_parser

    args = launch_command_parser().parse_args(argv)
    if not args.training_script:
        raise UserError("no training script given (scripts/sft.py --config recipes/NAME.yaml)")
    recipe = load_recipe(args.training_script_args)
    if args.config_file and not Path(args.config_file).is_file():
        raise UserError(f"{args.config_file}: launch config not found (see accelerate_configs/)")
    named = recipe.args.accelerate_config is not None or args.config_file is not None
    before = set(recipe.explicit)
    if chosen := fit_to_machine(recipe, launch_config_given=args.config_file is not None):
        print(chosen)
        # the processes take the same choices (and say nothing more about them)
        args.training_script_args += as_overrides(recipe, sorted(recipe.explicit - before))
    args.config_file = args.config_file or recipe_launch_config(recipe)
    if not named and args.mixed_precision is None:  # the chosen config runs the chosen precision
        args.mixed_precision = recipe_precision(recipe.fields)
    settings = launch_settings(args)
    check_recipe_on_this_machine(recipe)
    check_launch_precision(recipe, settings["mixed_precision"], args.config_file)
    if settings["shards_weights"] and recipe.model.load_in_4bit:
        check_sharded_4bit_storage(recipe.model)
    check_and_fill_processes(args, settings, torch.cuda.device_count())
    if settings["num_machines"] == 1 and settings["main_process_port"] is None:
        args.main_process_port = 0  # accelerate takes a free port: two launches on one machine never meet at 29500
    if args.num_cpu_threads_per_process is None:  # accelerate would choose the same and print a notice about it
        processes = max(1, (args.num_processes or 1) // settings["num_machines"])
        args.num_cpu_threads_per_process = max(1, (os.cpu_count() or 1) // processes)
    # torch's launcher sets it to 1 for each process and prints a banner about it when it is not set.
    os.environ.setdefault("OMP_NUM_THREADS", str(args.num_cpu_threads_per_process))
    return args


def launch(argv: list[str]) -> int:
    """Check, then run `accelerate launch argv`; returns the exit status of the launch."""
    from accelerate.commands.launch import launch_command

    args = checked_launch(argv)
    args.quiet = False  # accelerate then reports a single process's exit status (as CalledProcessError)
    # The processes report their own errors; torch's elastic agent would add a summary of each failure.
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    # A scheduler's SIGTERM reaches the training processes, which save a checkpoint and stop (torch's agent installs
    # its own forwarding for several processes; this one serves a single process under accelerate's simple launcher).
    signal.signal(signal.SIGTERM, forward_to_children)
    # A Ctrl-C reaches every process of the terminal's foreground group: the training processes stop themselves (a
    # checkpoint at the next step; a second Ctrl-C, at once) and this one waits for them. torch's agent would send
    # them a second SIGINT of its own.
    signal.signal(signal.SIGINT, lambda signum, frame: None)  # a handler, not SIG_IGN: the processes get the default
    os.environ["TORCHELASTIC_SIGNALS_TO_HANDLE"] = "SIGTERM,SIGHUP,SIGQUIT"
    try:
        launch_command(args)
    except SignalException:  # torch's agent stopped its processes on SIGTERM; they said where they saved
        return EXIT_STOPPED
    except subprocess.CalledProcessError as error:
        codes = [error.returncode]
    except Exception as error:  # torch's ChildFailedError: processes failed and said why above
        codes = sorted({failure.exitcode for failure in getattr(error, "failures", {}).values()})
        if not codes:  # not a process's failure: the launch itself (the rendezvous, another machine gone)
            reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
            said = f"{type(error).__name__}: {reason}" if reason else type(error).__name__
            print(f"error: the launch failed: {said}", file=sys.stderr)
            return 1
    else:
        return 0
    return failed_launch_status(codes)


def failed_launch_status(codes: list[int]) -> int:
    """The launch's exit status from its processes' (`codes`): the status of a process that said what happened, in
    one line (bad input, a lost process, a stop), else the last code, with one line pointing at the error above."""
    for said in (2, LostContact.status, EXIT_STOPPED, EXIT_INTERRUPTED):
        if said in codes:
            return said
    print(
        f"error: training failed (exit code {', '.join(map(str, codes))}); its error is printed above", file=sys.stderr
    )
    return codes[-1] if codes[-1] > 0 else 1


def forward_to_children(signum, frame):
    for child in psutil.Process().children():
        child.send_signal(signum)


def main() -> None:
    sys.exit(launch(sys.argv[1:]))


if __name__ == "__main__":
    run_cli(main)
