"""The one prompt builder: the same functions render a row for training and for generation."""

import string
from collections.abc import Mapping

import pandas as pd
from datasets import Dataset

from arabic_sft.cli import UserError
from arabic_sft.data import get_task

# SHEFAA's Arabic prompt, as its baseline document gives it.
SHEFAA_PROMPT = "سؤال: {question}\nالتصنيف: {category}\nالإجابة:"

# The proverbs document's unified English instruction that forces Modern Standard Arabic answers.
PROVERBS_INSTRUCTION = (
    "You are a linguistic expert in Yemeni proverbs.\n"
    "Explain the figurative meaning of the following proverb clearly and concisely\n"
    "in Modern Standard Arabic only. Do not translate into English.\n"
    "Proverb: {proverb}\n"
    "Explanation:"
)

DEFAULT_TEMPLATES = {"medical_qa": SHEFAA_PROMPT, "proverbs": PROVERBS_INSTRUCTION}

# Between a plain-text prompt ("...الإجابة:") and its answer; chat templates place the answer themselves.
PLAIN_SEPARATOR = " "


def resolve_template(task: str, template: str | None) -> str:
    """The recipe's template, or the task's default; its placeholders must be the task's input columns."""
    template = template or DEFAULT_TEMPLATES[task]
    inputs = set(get_task(task).inputs)
    fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    if not fields <= inputs:
        raise UserError(
            f"prompt_template uses unknown placeholder(s) {sorted(fields - inputs)} for task '{task}' "
            f"(available: {sorted(inputs)})"
        )
    return template


def build_prompt(row: Mapping[str, str], template: str) -> str:
    """The user's text for one row: the template with the row's input columns filled in."""
    return template.format(**row)


def build_model_prompt(row: Mapping[str, str], template: str, conversational: bool) -> str | list[dict]:
    """The prompt of one row as the model receives it: a user chat message, or the plain text."""
    prompt = build_prompt(row, template)
    return [{"role": "user", "content": prompt}] if conversational else prompt


def build_example(row: Mapping[str, str], template: str, answer_column: str, conversational: bool) -> dict:
    """A TRL prompt/completion example: chat messages when the tokenizer has a chat template, plain text otherwise.

    TRL masks the prompt out of the loss and ends the completion with EOS (the chat template's, or the tokenizer's).
    """
    prompt = build_model_prompt(row, template, conversational)
    answer = row[answer_column]
    if conversational:
        return {"prompt": prompt, "completion": [{"role": "assistant", "content": answer}]}
    return {"prompt": prompt, "completion": PLAIN_SEPARATOR + answer}


def prompt_token_ids(tokenizer, prompt: str | list[dict]) -> list[int]:
    """The token ids a model sees at inference for an example's `prompt`, tokenized exactly as TRL tokenizes it
    for training: the chat template with the generation prompt, or the plain text with the tokenizer's special tokens.
    """
    if isinstance(prompt, str):
        return tokenizer(prompt)["input_ids"]
    return tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]


def build_dataset(data: pd.DataFrame, template: str, answer_column: str, conversational: bool) -> Dataset:
    """A TRL prompt/completion dataset of `data`'s rows; `answer` keeps the raw answer text for inspection."""
    rows = data.to_dict("records")
    examples = [build_example(row, template, answer_column, conversational) for row in rows]
    return Dataset.from_list([{**example, "answer": row[answer_column]} for example, row in zip(examples, rows)])


def is_conversational(tokenizer, chat_format: str) -> bool:
    """Whether prompts go through the chat template: `chat`, `plain`, or `auto` (chat when the tokenizer has one)."""
    if chat_format == "chat" and tokenizer.chat_template is None:
        raise UserError("chat_format is 'chat' but the tokenizer has no chat template")
    return chat_format == "chat" or (chat_format == "auto" and tokenizer.chat_template is not None)
