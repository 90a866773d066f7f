"""A recipe's data check: its splits as training and generation read them (arabic_sft.data.splits.read_as_trained),
compared by arabic_sft.data.cleaning, with the questions of its lm-eval general tasks (read through lm-eval's own task
loading, as make general reads them); what training drops when the recipe asks. make data-check writes it; training
runs it first (the general tasks only when it decontaminates: loading lm-eval's task index takes seconds)."""

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from arabic_sft.data.cleaning import ENGINE, NUM_PERM, CheckSettings, Pair, check, counts, dropped_rows
from arabic_sft.data.mixture import SOURCE
from arabic_sft.runs import read_record
from arabic_sft.runtime.manifest import now, write_json_atomic


@dataclass
class DataCheck:
    pairs: list[Pair]
    settings: dict
    rows: dict[str, int]  # rows per split as read
    tasks: list[str] = field(default_factory=list)  # the general tasks whose questions were compared
    skipped: list[str] = field(default_factory=list)  # general tasks whose data could not be had
    drop: list[int] = field(default_factory=list)  # training rows left out: positions in the train frame
    dropped: list = field(default_factory=list)  # the same rows: positions in the training file ([source, position])
    reused: str | None = None  # when the check was made, when its kept result was reused (run_check's cache)

    def counts(self) -> dict:
        return counts(self.pairs)

    def mixed(self) -> bool:
        return any(pair.source_a for pair in self.pairs)

    def record(self) -> dict:
        """What a run manifest and data_check.json keep: the settings, the counts (a mixture's also per pair of
        sources), the dropped rows."""
        return {
            "settings": self.settings,
            "rows": self.rows,
            "counts": self.counts(),
            **({"counts_by_source": counts(self.pairs, by_source=True)} if self.mixed() else {}),
            "general_tasks": self.tasks,
            "general_tasks_skipped": self.skipped,
            "dropped": {"count": len(self.dropped), "train_rows": self.dropped},
            "reused": self.reused,  # the time of the check whose kept result this is, when it was reused
        }

    def reused_line(self) -> str | None:
        """The line that says a kept result was reused (None when the check was made)."""
        if not self.reused:
            return None
        return f"data check: the same rows, settings and engine as the check of {self.reused}: its result reused"

    def summary(self) -> str | None:
        """One line of what was found (None when nothing was), and what training does about it."""
        if not self.pairs:
            return None
        parts = [f"{number} {kind} {where}" for kind, by in counts(self.pairs).items() for where, number in by.items()]
        action = (
            f"training leaves out {len(self.dropped)} of {self.rows['train']} training rows"
            if self.dropped
            else "nothing dropped (deduplicate, decontaminate)"
        )
        return (
            f"data check: {', '.join(parts)} pair(s) of rows (compared after Arabic normalization); {action}; "
            "make data-check lists them"
        )


def general_task_names(args) -> list[str]:
    """The general tasks the recipe names (`general_tasks`; none asked for, none fetched) and the local task."""
    from arabic_sft.general.harness import LOCAL_TASK

    return list(dict.fromkeys([*(args.general_tasks or []), LOCAL_TASK]))


def run_check(args, splits: dict, spec, with_general: bool, cache: Path | None = None, keep: bool = True) -> DataCheck:
    """The check of `splits` (read_as_trained's) by the recipe's fields `args`; `with_general`: the general tasks'
    questions too. With `cache` (a file): the result kept there is reused when it was made from the same rows, spec,
    settings and general tasks by the same engine (`reused` then says when it was made); else it is made, and kept
    there with `keep`."""
    settings = CheckSettings(**{item.name: getattr(args, item.name) for item in fields(CheckSettings)})
    key = check_key(splits, spec, settings, general_task_names(args) if with_general else [])
    kept = read_record(cache) if cache else {}
    if kept.get("key") == key:
        pairs = [Pair(**pair) for pair in kept["check"]["pairs"]]
        return DataCheck(**{**kept["check"], "pairs": pairs, "reused": kept["made"]})
    result = checked(args, splits, spec, settings, with_general)
    if cache and keep:
        write_json_atomic(cache, {"key": key, "made": now(), "check": {**asdict(result), "reused": None}})
    return result


def check_key(splits: dict, spec, settings: CheckSettings, tasks: list[str]) -> str:
    """A sha256 of what decides a check's result: the engine, the settings, the general tasks asked for, the spec,
    and each split's rows (their columns and values, their positions in their files)."""
    digest = hashlib.sha256()
    compared = [spec.compared] if spec.compared else []  # a mixture's (a one-source key as before)
    head = {"engine": ENGINE, "settings": asdict(settings), "tasks": tasks, "num_perm": NUM_PERM,
            "spec": [spec.kind, spec.template, spec.accepted, spec.answer, *compared]}  # fmt: skip
    digest.update(json.dumps(head, sort_keys=True, default=str).encode())
    for name in sorted(splits):
        split = splits[name]
        digest.update(json.dumps([name, list(map(str, split.frame.columns)), list(split.positions)]).encode())
        digest.update(split.frame.to_json(orient="values", force_ascii=False).encode())
    return digest.hexdigest()


def checked(args, splits: dict, spec, settings: CheckSettings, with_general: bool) -> DataCheck:
    """The check itself (`run_check` without its cache)."""
    questions, tasks, skipped = {}, [], []
    if with_general:
        from arabic_sft.general.harness import task_questions

        questions, skipped = task_questions(general_task_names(args))
        tasks = list(questions)
    pairs = check(splits, spec, settings, questions)
    train = splits["train"]
    positions, sources = train.positions, train.frame[SOURCE].tolist() if SOURCE in train.frame.columns else []
    drop = dropped_rows(pairs, args.deduplicate, args.decontaminate, positions, sources)
    rows = {name: len(split.frame) for name, split in splits.items()}
    compared = "train, validation: inputs + answer; test: inputs; contamination: all of a training row's words"
    record = {**asdict(settings), "num_perm": NUM_PERM, "compared": compared}
    dropped = [[sources[i], positions[i]] if sources else positions[i] for i in drop]
    return DataCheck(pairs, record, rows, tasks, skipped, drop, dropped)
