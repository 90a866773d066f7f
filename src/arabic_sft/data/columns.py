"""The recipe's columns: how a row's cells become the fields of a prompt and its answer (`DataSpec`), and the
selection and checks of those columns in a frame (missing columns, empty cells, chat turns).

What is specific to a dataset (column names, the prompt, the predictions' column names) lives in its recipe: `columns`
maps each `{placeholder}` of `prompt_template` to the column that holds it, `answer_column` names the answer's
placeholder. Data already in TRL's formats needs neither: a `messages` column (chat turns) or `prompt`/`completion`.
"""

import json
import logging
import string
from dataclasses import dataclass

import numpy as np
import pandas as pd

from arabic_sft.runtime.errors import UserError


logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataSpec:
    """How rows become examples. `kind`: 'template' (the prompt template filled with input columns, one answer
    column), 'messages' (TRL's conversational format) or 'prompt_completion' (TRL's prompt/completion columns).
    `accepted`: each field (placeholder) and the column names that may hold it; `answer`: the answer's field;
    `output`: predictions CSV names the recipe sets (`output_columns`; `generated` names the generated column);
    `compared`: the fields the data check compares rows by, when not the inputs (a mixture's: data.mixture)."""

    kind: str
    template: str | None
    accepted: dict[str, tuple[str, ...]]
    answer: str
    output: dict[str, str]
    compared: tuple[str, ...] = ()

    @property
    def inputs(self) -> list[str]:
        return [name for name in self.accepted if name != self.answer]


def _names(value, key: str) -> tuple[str, ...]:
    names = [value] if isinstance(value, str) else value
    if not names or not all(isinstance(name, str) and name.strip() for name in names):
        raise UserError(f"columns: '{key}' must be a column name or a list of names, got {value!r}")
    return tuple(name.replace("\ufeff", "").strip().lower() for name in names)


def template_fields(template: str) -> list[str]:
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as error:
        raise UserError(f"prompt_template: {error} (write a literal brace as {{{{ or }}}})") from None
    if "" in names or any(not name.isidentifier() for name in names):
        raise UserError(f"prompt_template: placeholders must be names, like {{question}} (found {names})")
    return list(dict.fromkeys(names))


def data_spec(recipe, columns_found: list[str] | None = None) -> DataSpec:
    """The recipe's `DataSpec`. Without `prompt_template`, data in TRL's own formats (found among `columns_found`):
    a `messages` column, or `prompt` and `completion` columns."""
    output = dict(recipe.output_columns or {})
    if recipe.prompt_template:
        fields = template_fields(recipe.prompt_template)
        mapping = dict(recipe.columns or {})
        answer = recipe.answer_column
        unknown = sorted(set(mapping) - set(fields) - {answer})
        if unknown:
            raise UserError(
                f"columns: {unknown} are not placeholders of prompt_template ({fields}) nor the "
                f"answer_column ('{answer}')"
            )
        if answer in fields:
            raise UserError(
                f"answer_column '{answer}' is also a placeholder of prompt_template: the prompt would "
                "contain its answer"
            )
        accepted = {name: _names(mapping.get(name, name), name) for name in [*fields, answer]}
        return DataSpec("template", recipe.prompt_template, accepted, answer, output)
    found = {name.replace("\ufeff", "").strip().lower() for name in columns_found or []}
    if "messages" in found:
        return DataSpec("messages", None, {"messages": ("messages",)}, "answer", output)  # answer: the last turn
    if {"prompt", "completion"} <= found:
        return DataSpec(
            "prompt_completion", None, {"prompt": ("prompt",), "completion": ("completion",)}, "completion", output
        )
    raise UserError(
        "prompt_template is not set in the recipe, and the data has no `messages` column nor `prompt` and "
        f"`completion` columns (found: {', '.join(columns_found or [])}); set prompt_template and columns, or a task "
        "preset (`task: NAME` in a recipe, generate.py --task NAME)"
    )


def columns_by_name(frame: pd.DataFrame) -> dict[str, str]:
    """A frame's columns keyed by their lower-cased name, with a byte-order mark and surrounding spaces removed."""
    return {str(column).replace("\ufeff", "").strip().lower(): column for column in frame.columns}


def _text(value) -> str:
    """A cell as stripped text; a missing value (None, NaN, pandas' NA) as ""."""
    if value is None or (np.isscalar(value) or value is pd.NA) and pd.isna(value):
        return ""
    return str(value).strip()


def _messages(value, source: str, line: str) -> list[dict] | None:
    """A `messages` cell as a list of {role, content} turns (a JSON string in CSV); None when empty."""
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise UserError(f"{source}: column 'messages', {line}: not JSON ({error.msg})") from None
    value = list(value) if isinstance(value, (list, tuple, np.ndarray)) else value
    if not value:
        return None
    if not all(isinstance(turn, dict) and {"role", "content"} <= set(turn) for turn in value):
        raise UserError(f"{source}: column 'messages', {line}: each turn must have 'role' and 'content'")
    return [{"role": str(turn["role"]), "content": _text(turn["content"])} for turn in value]


@dataclass
class Split:
    """A split's rows under the spec's field names, and the source column each field came from."""

    frame: pd.DataFrame
    names: dict[str, str]
    source: str
    carried: tuple[str, ...] = ()  # columns kept beside the fields, under their own names (`select`'s `keep`)
    positions: tuple[int, ...] = ()  # each row's 0-based position in its file as read (before empty rows dropped)


def select(
    frame: pd.DataFrame,
    source: str,
    spec: DataSpec,
    require_answer: bool = True,
    empty_cells: str = "drop",
    keep: tuple[str, ...] = (),
    keep_if_present: bool = False,
) -> Split:
    """The spec's fields of `frame` as stripped text (or chat turns). Column names match case-insensitively, with a
    byte-order mark or surrounding spaces ignored. Rows with an empty cell are dropped with a count
    (`empty_cells="drop"`) or rejected (`"error"`). Without `require_answer`, the answer column is optional.
    `keep`: other columns carried along as text under their own names (a group column that is not a prompt input);
    an empty cell there drops nothing; one that is already a field is not carried twice; a missing one is an error,
    or (`keep_if_present`) not carried (`Split.carried` says which were)."""
    if frame.empty:
        raise UserError(
            f"{source}: has a header but no rows" if source.lower().endswith(".csv") else f"{source}: has no rows"
        )
    found = columns_by_name(frame)
    selected = _matched_columns(frame, found, source, spec, require_answer)
    csv = source.lower().endswith(".csv")

    def line(index) -> str:  # a CSV's line (1-based, after the header), else the row's number (1-based)
        return f"line {int(index) + 2}" if csv else f"row {int(index) + 1}"

    data, empty = _field_values(frame, selected, spec, lambda value: _messages(value[1], source, line(value[0])))
    carried = []
    for name in keep:
        column = found.get(name.replace("\ufeff", "").strip().lower())
        if column is None and not keep_if_present:
            raise UserError(
                f"{source}: no column '{name}' (group_column; found: {', '.join(map(str, frame.columns))})"
            )
        if column is not None and column not in selected.values():
            label = str(column).replace("\ufeff", "").strip()
            data[label] = frame[column].map(_text)
            carried.append(label)
    if empty.any():
        rows = ", ".join(str(line(i)) for i in data.index[empty][:5])
        if empty_cells == "error":
            raise UserError(f"{source}: {int(empty.sum())} row(s) with an empty cell ({rows}...)")
        logger.warning("%s: dropped %d row(s) with an empty cell (%s...)", source, int(empty.sum()), rows)
        data = data[~empty]
    if data.empty:
        raise UserError(f"{source}: no rows left after dropping empty cells")
    names = {name: str(column).replace("\ufeff", "").strip() for name, column in selected.items()}
    positions = tuple(int(index) for index in data.index)
    return Split(data.reset_index(drop=True), names, source, tuple(carried), positions)


def _matched_columns(frame: pd.DataFrame, found: dict, source: str, spec: DataSpec, require_answer: bool) -> dict:
    """field -> the frame's column for it (a field's accepted names, in any case); a missing one is one line."""
    selected = {}
    for name, accepted in spec.accepted.items():
        match = next((found[alias] for alias in accepted if alias in found), None)
        if match is not None:
            selected[name] = match
        elif name != spec.answer or require_answer:
            raise UserError(
                f"{source}: no column for '{name}' (found: {', '.join(map(str, frame.columns))}; "
                f"accepted: {', '.join(accepted)}, in any case)"
            )
    return selected


def _field_values(frame: pd.DataFrame, selected: dict, spec: DataSpec, turns) -> tuple[pd.DataFrame, pd.Series]:
    """(the fields' values: stripped text, or chat turns read by `turns((index, value))`; which rows have an empty
    one)."""
    chat = spec.kind == "messages" or (
        spec.kind == "prompt_completion" and any(isinstance(v, (list, np.ndarray)) for v in frame[selected["prompt"]])
    )  # TRL's conversational prompt/completion: kept as chat turns
    if chat:
        data = pd.DataFrame(
            {name: [turns(item) for item in frame[column].items()] for name, column in selected.items()},
            index=frame.index,
        )
        return data, data.isna().any(axis=1)
    data = pd.DataFrame({name: frame[column].map(_text) for name, column in selected.items()}, index=frame.index)
    return data, (data == "").any(axis=1)


def prediction_columns(spec: DataSpec, names: dict[str, str]) -> dict[str, str]:
    """Names of the predictions CSV's columns: each input under the user's own column name, then
    `Reference_<answer column>` and `Generated_<answer column>`; the recipe's `output_columns` override any."""
    answer = "Answer" if spec.kind == "messages" else names.get(spec.answer, spec.answer)
    columns = {name: names.get(name, name) for name in spec.inputs}
    columns[spec.answer] = f"Reference_{answer}"
    columns["generated"] = f"Generated_{answer}"
    columns.update(spec.output)
    return columns
