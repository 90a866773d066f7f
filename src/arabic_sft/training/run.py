"""Training a recipe, step by step: check the output directory, load and check the data, build the trainer, inspect
or train (stopping cleanly on SIGTERM), finish the run. Each step returns what it makes; `train` runs them in order.
"""

import ast
import logging
import math
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import datasets
import pandas as pd
import torch
import transformers
from trl import SFTTrainer, get_peft_config, get_quantization_config

from arabic_sft.data.columns import DataSpec
from arabic_sft.data.splits import data_files, load_training_splits
from arabic_sft.models import get_tokenizer
from arabic_sft.named import data_source
from arabic_sft.prompts.builder import build_dataset, check_assistant_masks, is_conversational
from arabic_sft.prompts.masks import describe_examples, format_example
from arabic_sft.prompts.truncation import apply_truncation_policy
from arabic_sft.recipe import Recipe
from arabic_sft.runs import LOG_HISTORY, MANIFEST, RecipeResults, finished_run
from arabic_sft.runtime.errors import LostContact, UserError, as_given
from arabic_sft.runtime.locks import exclusive_output
from arabic_sft.runtime.manifest import build_manifest, changed_files, now, write_json_atomic
from arabic_sft.runtime.stopping import Stopped, StopRequest, stopped_by
from arabic_sft.training import eval_generation
from arabic_sft.training.checkpoints import (
    changed_settings,
    clear_previous_run,
    keep_loss_sum,
    last_complete_checkpoint,
    remove_draft_card,
    resolve_resume_checkpoint,
    whole_run_train_loss,
)
from arabic_sft.training.data_check import run_check
from arabic_sft.training.launch import check_in_process, lost_contact, wait_for_lost_processes
from arabic_sft.training.loss_curve import plot_loss_curve
from arabic_sft.training.model import (
    cast_trainable,
    causal_lm_loss_from_logits,
    check_loss_parity,
    check_padding_free,
    keep_4bit_layers_differentiable,
    model_loading,
    trainable_dtype,
)


logger = logging.getLogger(__name__)


@dataclass
class TrainingData:
    """The recipe's rows as TRL examples, ready to tokenize, and what generation needs to know of them."""

    datasets: dict[str, datasets.Dataset]  # TRL examples per split (train, validation)
    frames: dict[str, pd.DataFrame]  # the same rows under the recipe's field names
    spec: DataSpec
    tokenizer: object  # the model's, which renders (chat template) and counts the examples
    conversational: bool
    held_out: dict | None  # a fraction split's rows, recorded for generation
    cleaning: dict | None = None  # the data check before training: counts, settings, the training rows left out


class SaveAndStopOnSigterm(transformers.TrainerCallback):
    """On SIGTERM or a first Ctrl-C, training ends at the next step boundary with a complete checkpoint. Under a
    multi-process launch the request is shared at every step end (one tiny all-reduce), so that every rank stops at
    the same step and the checkpoint is the same for all."""

    def __init__(self, accelerator):
        self.accelerator = accelerator
        self.request = StopRequest(
            "stopping at the end of this step with a checkpoint", say=accelerator.is_main_process
        )
        self.stopped_at: int | None = None

    def on_step_end(self, args, state, control, **kwargs):
        requested = torch.tensor([float(self.request.signal or 0)], device=self.accelerator.device)
        if self.accelerator.num_processes > 1:  # the signal any process received (on another machine, maybe)
            requested = self.accelerator.gather(requested).max()
            if self.request.signal is None and requested.item() > 0:
                self.request.signal = int(requested.item())  # this process stops for it too, and says which
        if requested.item() > 0:
            self.stopped_at = state.global_step
            control.should_save = True
            control.should_evaluate = False  # the grace period is for saving
            control.should_training_stop = True
        return control

    def on_epoch_end(self, args, state, control, **kwargs):
        if self.stopped_at is not None:  # the epoch was cut short: no end-of-epoch evaluation, no second save
            control.should_evaluate = control.should_save = False
        return control


def set_up_logging(training) -> Callable[[str], None]:
    """Log levels of every library for this process; returns a `print` that only the main process prints with."""
    logging.basicConfig(
        format="%(asctime)s %(levelname)s %(name)s: %(message)s", handlers=[logging.StreamHandler(sys.stdout)]
    )
    level = training.get_process_log_level()
    logger.setLevel(level)
    datasets.utils.logging.set_verbosity(level)
    # TRL's eight dataset-preparation bars per run; one line says what was prepared
    datasets.disable_progress_bars()
    transformers.utils.logging.set_verbosity(level)
    main_process = training.process_index == 0
    logging.getLogger("arabic_sft").setLevel(level if main_process else logging.ERROR)  # data warnings: once
    return print if main_process else (lambda line: None)


def check_before_loading(recipe: Recipe) -> str | None:
    """When `output_dir` holds a finished run of the same settings, the line that says so; a finished run of other
    settings is refused, naming the fields that differ. Checks the options that decide what happens to a previous
    run, and those that need another option."""
    args, training = recipe.args, recipe.training
    if args.overwrite_output_dir and training.resume_from_checkpoint:
        raise UserError("overwrite_output_dir and resume_from_checkpoint: give one of them")
    eval_generation.check_best_metric(training.metric_for_best_model, args.eval_generation_examples)
    data_source(args.data_source)  # the model card's data description: a wrong name fails now, not after training
    check_report_to(training.report_to)
    if args.inspect or args.overwrite_output_dir or not (manifest := finished_run(training.output_dir)):
        return None
    finished = manifest.get("finished", "unknown time")
    again = as_given("--overwrite_output_dir true", "ARGS='--overwrite_output_dir true'")
    ways_out = f"to train again from scratch pass {again}, or choose another {as_given('--output_dir', 'output_dir')}"
    current = {"recipe": asdict(args), "model": asdict(recipe.model), "training": training.to_dict()}
    changed = changed_settings(manifest.get("config", {}), current)
    changed += [
        f"{path}: its content (sha256)" for path in changed_files(manifest, data_files(args, ("train", "validation")))
    ]
    if changed:
        raise UserError(
            f"{training.output_dir} holds a finished run ({finished}) with other settings: "
            f"{'; '.join(changed)}; {ways_out}"
        )
    return f"{training.output_dir}: this run finished ({finished}); nothing to do; {ways_out}"


# Experiment trackers whose pip package is named otherwise.
TRACKER_PACKAGES = {"comet_ml": "comet-ml", "azure_ml": "azureml-core", "neptune": "neptune"}


def check_report_to(report_to: list[str] | None) -> None:
    """Every tracker in `report_to` is one transformers knows and is installed here: said now, in one line, rather
    than by the Trainer after the model has loaded. TensorBoard is installed; trackio, wandb, mlflow are the user's
    to install (docs/publishing.md)."""
    from transformers.integrations import get_available_reporting_integrations
    from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

    names = [name for name in report_to or [] if name not in ("none", "all")]
    if unknown := [name for name in names if name not in INTEGRATION_TO_CALLBACK]:
        raise UserError(
            f"report_to: {', '.join(unknown)}: not a tracker transformers knows ({', '.join(INTEGRATION_TO_CALLBACK)})"
        )
    if missing := [name for name in names if name not in get_available_reporting_integrations()]:
        packages = " ".join(TRACKER_PACKAGES.get(name, name) for name in missing)
        raise UserError(
            f"report_to: {', '.join(missing)} is not installed here: pip install {packages} (or report_to: "
            "tensorboard)"
        )


def load_data(recipe: Recipe, say: Callable[[str], None]) -> TrainingData:
    """The recipe's train (and validation) rows read and checked (before anything is downloaded, so that bad input
    fails in seconds), rendered as TRL examples with the model's tokenizer and counted against max_length."""
    args, training, model = recipe.args, recipe.training, recipe.model
    checked = {}

    def dropped(splits, spec) -> list[int]:  # near-duplicates and contamination, found and (when asked) left out
        cache = RecipeResults(recipe.name).data_check_cache if recipe.name else None
        # make data-check's kept result, when it is of these rows and settings (training itself keeps none)
        checked["check"] = result = run_check(args, splits, spec, args.decontaminate, cache, keep=False)
        if line := result.reused_line():
            say(line)
        if result.skipped:
            say(f"data check: general tasks skipped (their data cannot be had here): {', '.join(result.skipped)}")
        if line := result.summary():
            say(line)
        return result.drop

    frames, spec, held_out = load_training_splits(args, training.seed, dropped)
    tokenizer = get_tokenizer(model.model_name_or_path, model.model_revision, training.trust_remote_code)
    conversational = is_conversational(tokenizer, args.chat_format, spec)
    examples = {name: build_dataset(frame, spec, conversational) for name, frame in frames.items()}
    max_length = None if training.packing else training.max_length
    examples = apply_truncation_policy(tokenizer, examples, max_length, args.truncation, log=say)
    return TrainingData(examples, frames, spec, tokenizer, conversational, held_out, checked["check"].record())


def build_trainer(
    recipe: Recipe, data: TrainingData, say: Callable[[str], None], callbacks: Sequence = ()
) -> tuple[SFTTrainer, object]:
    """(TRL's `SFTTrainer` for the recipe's model, quantized and wrapped in LoRA as the recipe says, with the
    generation metrics attached when the recipe asks for them; the `ModelConfig` it loaded the model with)."""
    args, tokenizer = recipe.args, data.tokenizer
    init_kwargs, model = model_loading(recipe.model, recipe.training)
    training = replace(data_settings(recipe, data), model_init_kwargs=init_kwargs)
    dtype = trainable_dtype(args.adapter_dtype, model, training)  # checked before the model loads
    check_padding_free(training)
    trainer = SFTTrainer(
        model=model.model_name_or_path,
        args=training,
        train_dataset=data.datasets["train"],
        eval_dataset=data.datasets.get("validation") if training.eval_strategy != "no" else None,
        processing_class=tokenizer,
        compute_loss_func=causal_lm_loss_from_logits if args.loss_from_logits else None,
        quantization_config=get_quantization_config(model),
        peft_config=get_peft_config(model),
        callbacks=list(callbacks) or None,
    )
    keep_4bit_layers_differentiable(trainer.model)
    trainer_logger = logging.getLogger("transformers.trainer")
    for previous in [item for item in trainer_logger.filters if isinstance(item, QuietTiedWeights)]:
        trainer_logger.removeFilter(previous)  # one per process: the last trainer's model
    trainer_logger.addFilter(QuietTiedWeights(trainer.model))
    set_cadence(trainer.args, optimizer_steps(trainer), log_often="logging_steps" not in recipe.explicit)
    eval_generation.attach(
        trainer,
        data.frames.get("validation"),
        data.spec,
        data.conversational,
        args.eval_generation_examples,
        args.eval_generation_max_new_tokens,
        args.eval_generation_batch_size,
        training.seed,
        log=say,
    )
    sizes = ", ".join(f"{len(examples)} {name}" for name, examples in data.datasets.items())
    say(f"data: {sizes} examples, {'chat' if data.conversational else 'plain'} prompts, tokenized")
    if cast := cast_trainable(trainer.model, dtype):
        reason = (
            "fp16's grad scaler needs fp32; `bf16: true` is faster where the GPU has bf16"
            if training.fp16
            else "adapter_dtype"
        )
        logger.warning(
            "%d trainable parameter tensors kept in %s (%s)", cast, str(dtype).removeprefix("torch."), reason
        )
    return trainer, model


def data_settings(recipe: Recipe, data: TrainingData):
    """The recipe's `SFTConfig` as TRL prepares its data with it: for `messages` data every assistant turn is
    trained and the rest masked."""
    assistant_turns = data.spec.kind == "messages" and check_assistant_masks(data.tokenizer)
    return replace(recipe.training, assistant_only_loss=recipe.training.assistant_only_loss or assistant_turns)


def stand_in_trainer(training, dataset, tokenizer, scratch: str | Path) -> SFTTrainer:
    """An `SFTTrainer` for its prepared data only: TRL's templates, masks and truncation of `dataset` as `training`
    asks. TRL reads the tokenizer and the settings, not the model, so a one-layer Llama stands in for it, on this CPU,
    with `scratch` as its output_dir: --inspect needs neither a 7B model's weights nor the GPU its recipe trains on."""
    from transformers import LlamaConfig, LlamaForCausalLM

    shape = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2}
    stand_in = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), **shape))
    on_cpu = replace(training, output_dir=str(scratch), use_cpu=True, bf16=False, fp16=False, report_to="none",
                     gradient_checkpointing=False, eval_strategy="no", save_strategy="no",
                     load_best_model_at_end=False, model_init_kwargs=None)  # fmt: skip
    return SFTTrainer(model=stand_in, args=on_cpu, train_dataset=dataset, processing_class=tokenizer)


class QuietTiedWeights(logging.Filter):
    """Drops transformers' warning that a resumed checkpoint misses keys when the missing ones are all weights tied
    to others (lm_head to the embeddings): they were not saved because tying restores them. Other missing keys are
    still reported."""

    PREFIX = "There were missing keys in the checkpoint model loaded: "

    def __init__(self, model):
        super().__init__()
        self.tied = set(getattr(model, "all_tied_weights_keys", None) or {})

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if not message.startswith(self.PREFIX):
            return True
        try:
            missing = set(ast.literal_eval(message.removeprefix(self.PREFIX).rstrip(".")))
        except (ValueError, SyntaxError):
            return True
        return not missing <= self.tied


def optimizer_steps(trainer: SFTTrainer) -> int:
    """The run's optimizer steps, counted as the Trainer counts them (its tokenized, packed training set)."""
    args = trainer.args
    if args.max_steps > 0:
        return args.max_steps
    batches = math.ceil(
        len(trainer.train_dataset) / (args.per_device_train_batch_size * trainer.accelerator.num_processes)
    )
    return math.ceil(args.num_train_epochs * max(1, math.ceil(batches / args.gradient_accumulation_steps)))


def set_cadence(training, steps: int, log_often: bool) -> None:
    """Set `training`'s logging, evaluation and saving intervals in steps: a fraction (eval_steps: 0.2) becomes
    the number of steps it means in this run (the Trainer would record the number and, on resume, warn that it
    differs from the fraction); with `log_often`, a loss line every 10 steps or every tenth of the run, whichever is
    more often, so that a short first run shows its loss too."""
    changes = {
        name: max(1, math.ceil(steps * value))
        for name in ("logging_steps", "eval_steps", "save_steps")
        if (value := getattr(training, name)) is not None and value < 1
    }
    if log_often:
        changes["logging_steps"] = max(
            1, min(changes.get("logging_steps", training.logging_steps), math.ceil(steps / 10))
        )
    # In place, the one exception to `replace`: a new TrainingArguments would set up the trainer's accelerator again.
    for name, value in changes.items():
        setattr(training, name, value)


# The loss must fall below this share of its first logged value, or the run says it learned little.
LEARNED_LITTLE = 0.95


def learned_little(log_history: list[dict], learning_rate: float) -> str | None:
    """A warning when the training loss ended less than 5% below its first logged value, else None."""
    losses = [entry["loss"] for entry in log_history if "loss" in entry and "step" in entry]
    if len(losses) < 2 or losses[-1] < LEARNED_LITTLE * losses[0]:
        return None
    return (
        f"the training loss barely moved ({losses[0]:.4f} at first, {losses[-1]:.4f} at the end): the model learned "
        f"little; try a higher learning_rate (this run: {learning_rate:g}) or more epochs (num_train_epochs)"
    )


def inspect(trainer: SFTTrainer, count: int, json_path: str | None) -> list[dict]:
    """Print `count` training examples as the trainer sees them (masked prompt, trained completion); with
    `json_path`, also write them there. Returns them."""
    examples = describe_examples(trainer, count)
    for number, example in enumerate(examples, 1):
        print(format_example(number, example))
    if json_path:
        write_json_atomic(json_path, examples)
        print(f"wrote {len(examples)} examples to {json_path}")
    return examples


def resume_point(recipe: Recipe, trainer: SFTTrainer, say: Callable[[str], None]) -> str | None:
    """The checkpoint training resumes from: none when starting again (`overwrite_output_dir`, which removes the
    previous run's checkpoints and manifest), else the one asked for or the last complete one in output_dir."""
    output_dir = recipe.training.output_dir
    if recipe.args.overwrite_output_dir:
        if trainer.accelerator.is_main_process and (removed := clear_previous_run(output_dir)):
            say(f"{output_dir}: removed the previous run's {', '.join(removed)} (overwrite_output_dir)")
        trainer.accelerator.wait_for_everyone()
        return None
    checkpoint = resolve_resume_checkpoint(recipe.training.resume_from_checkpoint, output_dir)
    if checkpoint is not None:
        say(f"resuming from {checkpoint}")
    return checkpoint


def train_until_done_or_stopped(trainer: SFTTrainer, checkpoint: str | None) -> tuple[object, object]:
    """(the training result, None), or (None, the stop: its step and signal) when SIGTERM or Ctrl-C stopped it: every
    process stops at the same step boundary with a complete checkpoint."""
    stop = SaveAndStopOnSigterm(trainer.accelerator)
    trainer.add_callback(stop)
    try:
        result = trainer.train(resume_from_checkpoint=checkpoint)
    except Exception as error:
        if trainer.accelerator.num_processes > 1 and (what := lost_contact(error)):
            raise LostContact(lost_contact_message(trainer, what)) from error
        raise
    finally:
        stop.request.close()
    return (None, stop) if stop.stopped_at is not None else (result, None)


def lost_contact_message(trainer: SFTTrainer, what: str) -> str:
    """The one line a lost process of the run gets: the step, what the error said, where the next start resumes."""
    checkpoint = last_complete_checkpoint(trainer.args.output_dir)
    resume = (
        f"the same command resumes from {checkpoint}"
        if checkpoint
        else "no complete checkpoint yet: the same command starts again"
    )
    return (
        f"lost another process of this {trainer.accelerator.num_processes}-process run after step "
        f"{trainer.state.global_step} ({what}): a machine or process died, or did not answer within ddp_timeout "
        f"({trainer.args.ddp_timeout} s); {resume}"
    )


def finish_run(
    recipe: Recipe, trainer: SFTTrainer, model, data: TrainingData, result, started: str, on_finish: Callable | None
) -> str:
    """Save the metrics, the state, the model (its generation stops at the tokenizer's EOS, the token every
    completion was trained to end with), loss.png and, last, the manifest that marks the run finished. Returns
    the output directory."""
    training, output_dir = trainer.args, trainer.args.output_dir
    trainer.log_metrics("train", result.metrics)
    trainer.save_metrics("train", result.metrics)
    trainer.save_state()
    trainer.model.generation_config.eos_token_id = trainer.processing_class.eos_token_id
    trainer.save_model(output_dir)
    if trainer.accelerator.is_main_process:
        processes = trainer.accelerator.num_processes
        launch = {
            "num_processes": processes,
            "distributed_type": trainer.accelerator.distributed_type.value,
            "global_batch_size": training.per_device_train_batch_size
            * processes
            * training.gradient_accumulation_steps,
        }
        held_out = dict(data.held_out or {})
        sources = held_out.pop("sources", None)
        record = {
            "kind": data.spec.kind,
            "chat": data.conversational,  # prompts through the model's chat template (else plain text)
            "examples": {name: len(examples) for name, examples in data.datasets.items()},
            "held_out": held_out or None,  # the rows generation uses for a fraction split
            **({"sources": sources} if sources else {}),  # a mixture's: weight, rows used (file positions), files
            "cleaning": data.cleaning,  # near-duplicates and contamination found; the training rows left out
        }
        configs = {
            "recipe": recipe.args,
            "model": model,
            "training": training,
            "launch": launch,
            "data": record,
        }
        files = data_files(recipe.args)
        plot_loss_curve(trainer.state.log_history, os.path.join(output_dir, "loss.png"))
        write_json_atomic(os.path.join(output_dir, LOG_HISTORY), trainer.state.log_history)  # for the report
        # Last: the manifest marks the run finished (a rerun then changes nothing).
        write_json_atomic(os.path.join(output_dir, MANIFEST), build_manifest(configs, files, started))
        print(
            f"saved the trained {'adapter' if model.use_peft else 'model'} to {output_dir}, its loss curve in loss.png"
        )
        if on_finish is not None:
            on_finish(recipe, output_dir)
        if warning := learned_little(trainer.state.log_history, training.learning_rate):
            logger.warning(warning)
    trainer.accelerator.wait_for_everyone()
    return output_dir


def train(recipe: Recipe, callbacks: Sequence = (), on_finish: Callable | None = None) -> list[Path]:
    """Run the recipe's training (or `--inspect`) to the end; returns what it wrote (the output_dir; nothing for
    --inspect without --inspect_json); raises `Stopped` after SIGTERM or Ctrl-C, a checkpoint saved. `callbacks`:
    more `TrainerCallback`s (a sweep's trial reporting its evaluations); `on_finish(recipe, output_dir)`: called by
    the main process once the run is saved and marked finished (the model card's writer). One training per
    output_dir: the main process holds its lock for the whole run (--inspect writes nothing there)."""
    if recipe.args.inspect:  # inspecting reads the tokenizer and prepares the data: on any machine, on its CPU
        recipe.choose({"use_cpu": True, "bf16": False, "fp16": False})
    else:
        check_in_process(recipe)  # the machine's choices (precision) and checks, before SFTConfig is built
    training = recipe.training
    wait_for_lost_processes(training.ddp_timeout)
    with exclusive_output(training.output_dir, enabled=training.process_index == 0 and not recipe.args.inspect):
        return _train(recipe, callbacks, on_finish)


def _train(recipe: Recipe, callbacks: Sequence, on_finish: Callable | None) -> list[Path]:
    started = now()
    say = set_up_logging(recipe.training)
    output_dir = Path(recipe.training.output_dir)
    if finished := check_before_loading(recipe):
        say(finished)
        return [output_dir]
    data = load_data(recipe, say)
    if recipe.args.inspect:
        with tempfile.TemporaryDirectory() as scratch:  # nothing written in output_dir
            trainer = stand_in_trainer(data_settings(recipe, data), data.datasets["train"], data.tokenizer, scratch)
            inspect(trainer, recipe.args.inspect, recipe.args.inspect_json)
        return [Path(recipe.args.inspect_json)] if recipe.args.inspect_json else []
    trainer, model = build_trainer(recipe, data, say, callbacks)
    if recipe.args.check_loss_parity and (losses := check_loss_parity(trainer)):
        say(
            "loss parity check passed: the trainer's loss {:.4f} = the model's own {:.4f} on one batch".format(*losses)
        )
    checkpoint = resume_point(recipe, trainer, say)
    keep_loss_sum(trainer, checkpoint)
    result, stopped = train_until_done_or_stopped(trainer, checkpoint)
    if stopped is not None:
        if trainer.accelerator.is_main_process:
            output_dir, step = recipe.training.output_dir, stopped.stopped_at
            remove_draft_card(output_dir)
            print(
                f"stopped by {stopped_by(stopped.request.signal)} after step {step}: {output_dir}/checkpoint-{step} "
                "saved; the same command resumes from it",
                file=sys.stderr,
            )
        raise Stopped(stopped.request.signal)
    metrics = whole_run_train_loss(result.metrics, checkpoint, trainer._initial_global_step, trainer.state.global_step)
    finish_run(recipe, trainer, model, data, result._replace(metrics=metrics), started, on_finish)
    return [output_dir]
