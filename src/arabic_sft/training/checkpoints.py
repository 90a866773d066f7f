"""Which checkpoint a rerun resumes from: the last one the trainer finished writing, never one cut off by a kill."""

import json
import logging
import re
import shutil
from pathlib import Path

from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from arabic_sft.runs import LOG_HISTORY, MANIFEST, TRAINER_STATE
from arabic_sft.runtime.errors import UserError


logger = logging.getLogger(__name__)

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


def finished_run(output_dir: str | Path) -> dict | None:
    """When `output_dir` holds a finished run, its manifest; else None."""
    try:
        return json.loads((Path(output_dir) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


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
