"""Which checkpoint a rerun resumes from: the last one the trainer finished writing, never one cut off by a kill."""

import json
import logging
import re
import shutil
from pathlib import Path

from arabic_sft.runs import CARD, LOG_HISTORY, LOSS_SUM, MANIFEST, TRAINER_STATE
from arabic_sft.runtime.errors import UserError


logger = logging.getLogger(__name__)

# transformers.trainer_utils.PREFIX_CHECKPOINT_DIR (tests/test_runs.py checks it), written here: importing it costs
# the comparison and the report ~7 s of transformers and peft imports.
PREFIX_CHECKPOINT_DIR = "checkpoint"
CHECKPOINT = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")
# The Trainer writes the model, then optimizer/scheduler/RNG state, and trainer_state.json last: a checkpoint whose
# trainer_state.json is missing or torn was being written when the process died.


def is_complete(checkpoint: str | Path) -> bool:
    """Whether the Trainer finished writing `checkpoint` (its state file, written last, parses)."""
    try:
        json.loads((Path(checkpoint) / TRAINER_STATE).read_text(encoding="utf-8"))
        return True
    except (OSError, ValueError):
        return False


def last_complete_checkpoint(output_dir: str | Path) -> str | None:
    """The highest-step complete `checkpoint-N` in `output_dir`; incomplete ones are reported and skipped."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return None
    steps = sorted(
        (
            (int(match.group(1)), path)
            for path in output_dir.iterdir()
            if path.is_dir() and (match := CHECKPOINT.match(path.name))
        ),
        reverse=True,
    )
    for _, path in steps:
        if is_complete(path):
            return str(path)
        logger.warning("%s is incomplete (the run stopped while writing it); not resuming from it", path)
    return None


def resolve_resume_checkpoint(resume_from_checkpoint: str | bool | None, output_dir: str) -> str | None:
    """The checkpoint to resume from: the one asked for (which must be complete), else the last complete one in
    `output_dir` (a rerun continues where a killed run stopped)."""
    if resume_from_checkpoint in (None, False, "", "false", "False"):
        return last_complete_checkpoint(output_dir)
    if resume_from_checkpoint in (True, "true", "True"):
        checkpoint = last_complete_checkpoint(output_dir)
        if checkpoint is None:
            raise UserError(f"{output_dir}: no complete checkpoint to resume from")
        return checkpoint
    if not Path(resume_from_checkpoint).is_dir():
        raise UserError(f"{resume_from_checkpoint}: checkpoint directory not found")
    if not is_complete(resume_from_checkpoint):
        raise UserError(
            f"{resume_from_checkpoint}: incomplete checkpoint (no readable {TRAINER_STATE}); pick an earlier one"
        )
    return str(resume_from_checkpoint)


# Fields that may differ between a finished run and the same recipe run again: how it was launched or resumed, what
# the run filled in itself, and where it writes (the same directory, by construction).
NOT_SETTINGS = {
    "overwrite_output_dir", "resume_from_checkpoint", "inspect", "inspect_json", "accelerate_config", "output_dir",
    "logging_dir", "model_init_kwargs", "assistant_only_loss", "logging_steps", "eval_steps", "save_steps",
    "license", "data_source",  # what the model card says, not how the model was trained
}  # fmt: skip


def changed_settings(recorded: dict, current: dict) -> list[str]:
    """`field: old -> new` for each field of the sections of `current` (recipe, model, training: plain dicts) whose
    value differs from the one `recorded` in a finished run's manifest."""
    changes = []
    for section, values in current.items():
        before = recorded.get(section) or {}
        for name in sorted(set(values) - NOT_SETTINGS):
            old, new = before.get(name, "unset"), json.loads(json.dumps(values[name], default=str))
            if old != new:
                changes.append(
                    f"{name}: {json.dumps(old, ensure_ascii=False)} -> {json.dumps(new, ensure_ascii=False)}"
                )
    return changes


def clear_previous_run(output_dir: str | Path) -> list[str]:
    """Remove a previous run's checkpoints, answers at evaluation (eval_generations/) and manifest from `output_dir`
    (`overwrite_output_dir`), so that a later rerun can never resume from them or mistake the new run for finished.
    Returns what was removed."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    removed = [
        path
        for path in output_dir.iterdir()
        if path.is_dir() and (CHECKPOINT.match(path.name) or path.name == "eval_generations")
    ]
    for path in removed:
        shutil.rmtree(path)
    for name in (MANIFEST, LOG_HISTORY):
        if (output_dir / name).is_file():
            (output_dir / name).unlink()
            removed.append(output_dir / name)
    return [path.name for path in removed]


# The sum of the training losses of every step up to a checkpoint, saved in it. Written by hand: the Trainer keeps
# this sum in memory only, so after a resume its `train_loss` is the mean of the resumed steps alone.


def keep_loss_sum(trainer, resumed_from: str | None) -> None:
    """Save, in each checkpoint the trainer writes, the loss summed over every step so far (the resumed-from
    checkpoint's sum included)."""
    before = loss_sum_in(resumed_from)
    save = trainer._save_checkpoint  # the one place every checkpoint is written (the Trainer has no hook after it)

    def save_with_loss_sum(model, trial):
        if trainer.accelerator.is_main_process:
            folder = Path(trainer.args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{trainer.state.global_step}"
            folder.mkdir(parents=True, exist_ok=True)
            total = (before or 0.0) + trainer._total_loss_scalar + trainer._tr_loss.item()
            record = {"step": trainer.state.global_step, "loss_sum": total}
            (folder / LOSS_SUM).write_text(json.dumps(record), encoding="utf-8")
        save(model, trial)

    trainer._save_checkpoint = save_with_loss_sum


def loss_sum_in(checkpoint: str | Path | None) -> float | None:
    """The loss summed over the steps up to `checkpoint` (0 without one; None when it holds no sum: written before
    this was recorded)."""
    if checkpoint is None:
        return 0.0
    try:
        return float(json.loads((Path(checkpoint) / LOSS_SUM).read_text(encoding="utf-8"))["loss_sum"])
    except (OSError, ValueError, KeyError):
        return None


def whole_run_train_loss(metrics: dict, resumed_from: str | None, initial_step: int, global_step: int) -> dict:
    """The trainer's metrics with `train_loss` the mean over every step of the run, a resumed one too (the trainer's
    own covers the resumed steps only: kept as `train_loss_this_session`)."""
    if resumed_from is None or "train_loss" not in metrics or global_step <= 0:
        return metrics
    before = loss_sum_in(resumed_from)
    if before is None:
        return {**metrics, "train_loss_this_session": metrics["train_loss"], "train_loss": None}
    session = metrics["train_loss"] * (global_step - initial_step)
    return {
        **metrics,
        "train_loss_this_session": metrics["train_loss"],
        "train_loss": (before + session) / global_step,
    }


def remove_draft_card(output_dir: str | Path) -> bool:
    """Remove the draft model card TRL writes with each checkpoint (its base model `None`, `license: license`) from
    a run that stopped before finishing: the project's card is written when the run finishes."""
    card = Path(output_dir) / CARD
    if card.is_file() and "arabic-sft" not in card.read_text(encoding="utf-8"):
        card.unlink()
        return True
    return False
