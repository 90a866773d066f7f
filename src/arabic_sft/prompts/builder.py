"""The one prompt builder: the same functions render a row for training and for generation.

A row becomes a TRL example by its `DataSpec` (arabic_sft.data.columns): the prompt template filled with the row's
inputs and its answer as the completion; or TRL's own `prompt`/`completion` or `messages` data, as it is.
"""

import json
from collections.abc import Mapping, Sequence

import pandas as pd
from datasets import Dataset

from arabic_sft.data.columns import DataSpec
from arabic_sft.data.mixture import SOURCE
from arabic_sft.runtime.errors import UserError


# Between a plain-text prompt ("...الإجابة:") and its answer; chat templates place the answer themselves.
PLAIN_SEPARATOR = " "


def build_prompt(row: Mapping[str, str], template: str) -> str:
    """The user's text for one row: the template with the row's input columns filled in."""
    return template.format(**row)


def _ends_with_answer(messages: list[dict]) -> bool:
    return messages[-1]["role"] == "assistant"


# Between the solved examples of a plain-text few-shot prompt, and before the question.
SHOT_SEPARATOR = "\n\n"


def build_model_prompt(
    row: Mapping, spec: DataSpec, conversational: bool, shots: Sequence[Mapping] = ()
) -> str | list[dict]:
    """The prompt of one row as the model receives it: chat messages, or the plain text. A conversation that ends
    with an assistant turn is prompted with the turns before it (that turn is the reference answer).

    `shots` (few-shot): solved rows shown first, each rendered exactly as a training example: earlier user/assistant
    turns with a chat template, prompt + answer blocks separated by a blank line in plain text.
    """
    if spec.kind == "messages":
        if shots:
            raise UserError("few-shot prompts need prompt and answer columns; `messages` data carries its own turns")
        messages = row["messages"]
        return messages[:-1] if _ends_with_answer(messages) else messages
    prompt = row["prompt"] if spec.kind == "prompt_completion" else build_prompt(row, spec.template)
    solved = [build_example(shot, spec, conversational) for shot in shots]
    if isinstance(prompt, list) or conversational:
        turns = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
        return [turn for example in solved for turn in _turns(example)] + turns
    return "".join(example["prompt"] + example["completion"] + SHOT_SEPARATOR for example in solved) + prompt


def _turns(example: dict) -> list[dict]:
    prompt, completion = example["prompt"], example["completion"]
    return (prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]) + (
        completion if isinstance(completion, list) else [{"role": "assistant", "content": completion}]
    )


def reference_answer(row: Mapping, spec: DataSpec) -> str:
    """The answer text of one row (a conversation's last turn, when the assistant's); "" for a row without one."""
    if spec.kind == "messages":
        messages = row["messages"]
        return messages[-1]["content"] if _ends_with_answer(messages) else ""
    answer = row.get(spec.answer, "")
    return answer[-1]["content"] if isinstance(answer, list) else answer


def build_example(row: Mapping, spec: DataSpec, conversational: bool) -> dict:
    """A TRL example: `messages` as they are (every assistant turn trained), or prompt/completion, as chat messages
    when the tokenizer's chat template is used, plain text otherwise.

    TRL masks the prompt out of the loss and ends the completion with EOS (the chat template's, or the tokenizer's).
    """
    if spec.kind == "messages":
        if not any(turn["role"] == "assistant" for turn in row["messages"]):
            raise UserError("a `messages` row has no assistant turn, so nothing in it would be trained")
        return {"messages": row["messages"]}
    prompt = build_model_prompt(row, spec, conversational)
    answer = row[spec.answer]
    if isinstance(answer, list):  # TRL's conversational prompt/completion
        return {"prompt": prompt, "completion": answer}
    if isinstance(prompt, list):
        return {"prompt": prompt, "completion": [{"role": "assistant", "content": answer}]}
    # TRL's own prompt/completion text is used as it is; a template's prompt ("...الإجابة:") gets a space.
    return {"prompt": prompt, "completion": (PLAIN_SEPARATOR if spec.kind == "template" else "") + answer}


def predictions_table(
    rows: list[dict], spec: DataSpec, names: dict[str, str], generated: list[str], carried: tuple[str, ...] = ()
) -> pd.DataFrame:
    """The predictions CSV: the inputs (chat turns as JSON), the `carried` columns (a group column), the reference
    answer and the generated one, named by `names` (arabic_sft.data.prediction_columns)."""

    def cell(value):
        return json.dumps(value, ensure_ascii=False) if isinstance(value, list) else value

    if spec.kind == "messages":
        inputs = {names["messages"]: [cell(build_model_prompt(row, spec, True)) for row in rows]}
    else:
        inputs = {names[name]: [cell(row[name]) for row in rows] for name in spec.inputs}
    inputs.update({name: [row[name] for row in rows] for name in carried if name not in inputs})
    references = [reference_answer(row, spec) for row in rows]
    if spec.kind != "messages" and not any(spec.answer in row for row in rows) or not any(references):
        references = None  # a test file without answers: nothing to score against, no column
    return pd.DataFrame(
        {**inputs, **({names[spec.answer]: references} if references else {}), names["generated"]: generated}
    )


def prompt_token_ids(tokenizer, prompt: str | list[dict]) -> list[int]:
    """The token ids a model sees at inference for an example's `prompt`, tokenized exactly as TRL tokenizes it
    for training: the chat template with the generation prompt, or the plain text with the tokenizer's special tokens.
    """
    if isinstance(prompt, str):
        return tokenizer(prompt)["input_ids"]
    return tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True, return_dict=True)[
        "input_ids"
    ]


def build_dataset(data: pd.DataFrame, spec: DataSpec, conversational: bool) -> Dataset:
    """A TRL dataset of `data`'s rows; `answer` keeps the raw answer text for inspection (and a mixture's `source`,
    each row's source: data.mixture)."""
    rows = data.to_dict("records")
    mixed = SOURCE in data.columns
    return Dataset.from_list(
        [
            {
                **build_example(row, spec, conversational),
                "answer": reference_answer(row, spec),
                **({SOURCE: row[SOURCE]} if mixed else {}),
            }
            for row in rows
        ]
    )


def is_conversational(tokenizer, chat_format: str, spec: DataSpec | None = None) -> bool:
    """Whether prompts go through the chat template: `chat`, `plain`, or `auto` (chat when the tokenizer has one).
    Chat turns in the data (`messages`) need a chat template."""
    if spec is not None and spec.kind == "messages":
        if tokenizer.chat_template is None or chat_format == "plain":
            raise UserError(
                "the data is chat turns (`messages`), which need a tokenizer with a chat template and "
                "chat_format auto or chat"
            )
        return True
    if chat_format == "chat" and tokenizer.chat_template is None:
        raise UserError("chat_format is 'chat' but the tokenizer has no chat template")
    return chat_format == "chat" or (chat_format == "auto" and tokenizer.chat_template is not None)


def check_assistant_masks(tokenizer) -> bool:
    """True when TRL can train only the assistant turns of `messages` data with this tokenizer's chat template (it
    marks them with `{% generation %}`, or TRL ships a training version of it); else a `UserError` saying what the
    template lacks."""
    from trl.chat_template_utils import get_training_chat_template, has_generation_markers

    if has_generation_markers(tokenizer.chat_template):
        return True
    try:
        get_training_chat_template(tokenizer)
    except ValueError:
        raise UserError(
            "the data is chat turns (`messages`), but the tokenizer's chat template has no {% generation %} ... "
            "{% endgeneration %} markers around the assistant's content and TRL has no training version of it, so "
            "the assistant turns cannot be told from the rest; add the markers to the template (chat_template in "
            "tokenizer_config.json), or give the data as prompt/completion columns"
        ) from None
    return True


def example_text(example: dict) -> str:
    """All the text of a TRL example (prompt + completion, or every turn), e.g. to train a tokenizer on."""
    parts = [example["messages"]] if "messages" in example else [example["prompt"], example["completion"]]
    return "".join(part if isinstance(part, str) else "\n".join(turn["content"] for turn in part) for part in parts)
