"""Answer one row at a time exactly as `make eval` / `make baseline` answered it: for each side of a comparison (the
base model zero-shot, with a few-shot baseline's solved rows, the fine-tuned model) the generation settings those
stages resolve, the project's prompt builder, and the decoding their predictions were generated with (their
manifest's), one prompt at a time, streamed. `make chat` puts these sides beside each other."""

import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from arabic_sft.data.mixture import SOURCE
from arabic_sft.data.splits import load_splits
from arabic_sft.generation.batched import stream_generation
from arabic_sft.generation.run import few_shot, shots_of
from arabic_sft.generation.settings import GenerationSettings
from arabic_sft.models import load_for_generation
from arabic_sft.prompts.builder import build_model_prompt, is_conversational, prompt_token_ids, reference_answer
from arabic_sft.runs import RunFolder
from arabic_sft.runtime.errors import UserError
from arabic_sft.runtime.manifest import read_json


# generate.py's own defaults: what make eval generated with when its predictions' manifest does not say.
EVAL_DECODING = {"temperature": 0.0, "top_p": 1.0, "max_new_tokens": 256}


def generation_record(folder: RunFolder, split: str = "test") -> dict:
    """The configuration the predictions of `folder` (a run's or a baseline's) were generated with ({} if none)."""
    return (read_json(folder.generation_manifest(split)) or {}).get("config") or {}


def eval_decoding(folder: RunFolder) -> dict:
    """The decoding `make eval` generated this run's answers with (its predictions' manifest), else generate.py's."""
    for split in ("test", "validation"):
        settings = generation_record(folder, split).get("generation") or {}
        if settings:
            return {key: settings.get(key, value) for key, value in EVAL_DECODING.items()}
    return dict(EVAL_DECODING)


def as_field(value) -> str:
    """A row's value as a text field shows it: chat turns as JSON (as the predictions CSV writes them)."""
    return json.dumps(value, ensure_ascii=False) if isinstance(value, list) else str(value)


def from_field(text: str):
    """A text field's value as a row holds it: chat turns given as JSON, else the text."""
    if text.lstrip().startswith("["):
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return text
        if isinstance(value, list) and all(isinstance(turn, dict) and "role" in turn for turn in value):
            return value
    return text


@dataclass
class Side:
    """One model answering one way: `label` says which (and is the page's column title)."""

    label: str
    settings: GenerationSettings
    model: object
    tokenizer: object
    conversational: bool
    examples: list | dict = field(default_factory=list)  # the solved rows of a few-shot prompt (a mixture's by source)

    @property
    def key(self) -> str:
        """The side's name in a script's answers: base, base_K_shot or tuned (whatever other sides there are)."""
        if not self.settings.baseline:
            return "tuned"
        return f"base_{self.settings.shots}_shot" if self.settings.shots else "base"

    def prompt(self, row: dict, spec) -> list[int]:
        shots = shots_of(self.examples, row)
        return prompt_token_ids(self.tokenizer, build_model_prompt(row, spec, self.conversational, shots))

    def stream(self, row: dict, spec) -> Iterator[str]:
        """The answer as it is generated; the last text is the one make eval writes for this row."""
        settings = self.settings
        yield from stream_generation(
            self.model, self.tokenizer, self.prompt(row, spec), settings.max_new_tokens, settings.temperature,
            settings.top_p, settings.seed,
        )  # fmt: skip

    def describe(self) -> dict:
        """What answers on this side: the model, the adapter, the decoding, the shots."""
        settings = self.settings
        return {
            "model": settings.model_dir or settings.base_id,
            "adapter": settings.adapter_dir
            or (settings.model_dir if Path(settings.model_dir or "", "adapter_config.json").is_file() else None),
            "decoding": "greedy"
            if not settings.temperature
            else f"sampling (temperature {settings.temperature}, top_p {settings.top_p}, seed {settings.seed})",
            "max_new_tokens": settings.max_new_tokens,
            "prompt": "chat template" if self.conversational else "plain text",
            "shots": settings.shots,
        }


class Answerer:
    """The sides of one recipe and its test rows; models loaded once each (a base shared by its zero- and few-shot
    sides)."""

    def __init__(self, sides: list[tuple[str, GenerationSettings, RunFolder]], data, split: str = "test"):
        """`sides`: (label, the settings generate.py resolves for that side, the folder its predictions go to);
        `data`: the recipe's data and prompt fields."""
        wanted = (split, "train") if any(settings.shots for _, settings, _ in sides) else (split,)
        first = sides[0][1]
        self.splits, self.spec, _ = load_splits(data, first.split_seed, wanted=wanted, require_answer=False)
        if split not in self.splits:
            raise UserError(f"the recipe has no {split} data to pick rows from")
        self.rows = self.splits[split].frame.to_dict("records")
        self.sides: list[Side] = []
        loaded: dict[tuple, tuple] = {}
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        records = [generation_record(folder, split) for _, _, folder in sides]
        for (label, settings, _), record in zip(sides, records):
            # the decoding this side's predictions were made with; a side not generated yet (no make baseline) takes
            # the last side's (the fine-tuned model's, as make eval generated)
            made = record.get("generation") or records[-1].get("generation") or {}
            decoding = {key: made[key] for key in ("max_new_tokens", "temperature", "top_p", "seed") if key in made}
            settings = replace(settings, **decoding)
            key = (settings.model_dir, settings.base_id, settings.adapter_dir, settings.revision)
            if key not in loaded:
                loaded[key] = load_for_generation(
                    settings.model_dir, settings.base_id, settings.adapter_dir, settings.revision,
                    settings.trust_remote_code, device=device,
                )  # fmt: skip
            model, tokenizer = loaded[key]
            conversational = is_conversational(tokenizer, data.chat_format, self.spec)
            recorded = (record.get("shots") or {}).get("rows") if settings.shots else None
            frame = self.splits[split].frame
            examples, _ = few_shot(settings, self.splits, frame, self.spec, conversational, recorded)
            self.sides.append(Side(label, settings, model, tokenizer, conversational, examples))

    @property
    def fields(self) -> list[str]:
        """The inputs a row gives the prompt: the template's fields, or TRL's `prompt` / `messages`."""
        kind = self.spec.kind
        if kind != "template":
            return ["messages"] if kind == "messages" else ["prompt"]
        mixed = bool(self.rows) and SOURCE in self.rows[0]  # a mixture's row says its source (its shots' source)
        return [*self.spec.inputs, *([SOURCE] if mixed else [])]

    def row_of(self, values: list[str]) -> dict:
        return {name: from_field(value) for name, value in zip(self.fields, values, strict=True)}

    def fields_of(self, index: int) -> tuple[list[str], str]:
        """(the input fields of test row `index` as text, its reference answer)."""
        row = self.rows[index]
        values = [row[name] for name in self.fields]
        if self.spec.kind == "messages":
            values = [build_model_prompt(row, self.spec, True)]
        return [as_field(value) for value in values], as_field(reference_answer(row, self.spec))

    def answers(self, fields: dict[str, str]) -> dict[str, str]:
        """Every side's answer to the row whose input `fields` are given by name, by side (`Side.key`)."""
        *_, texts = self.stream([fields.get(name, "") for name in self.fields])  # the last: every side's whole answer
        return {side.key: text for side, text in zip(self.sides, texts)}

    def stream(self, values: list[str]) -> Iterator[list[str]]:
        """Every side's answer to the row `values` make, one side after another, as each is generated: the texts
        of all sides after each new piece."""
        row = self.row_of(values)
        answers = [""] * len(self.sides)
        for number, side in enumerate(self.sides):
            for text in side.stream(row, self.spec):
                answers[number] = text
                yield list(answers)
