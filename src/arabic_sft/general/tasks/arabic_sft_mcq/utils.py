"""The local task's data: questions.jsonl beside this file, as lm-eval's `custom_dataset` (a DatasetDict)."""

import json
from pathlib import Path

import datasets


QUESTIONS = Path(__file__).with_name("questions.jsonl")


def load(**_) -> datasets.DatasetDict:
    rows = [json.loads(line) for line in QUESTIONS.read_text(encoding="utf-8").splitlines() if line.strip()]
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})
