"""Several sources in one recipe (`datasets:`, TRL's dataset mixture with the recipe's own fields per source): each
source is read as a one-source recipe would read it (its files, columns, prompt, held-out fractions), its training
rows are sampled by its weight with the recipe's seed, and each row is rendered by its source's prompt template and
remembers its source (`source` column, and its position in its file); the sources' rows then stand together as one
recipe's splits, whose prompt is the rendered text (MIXTURE) — the prompt builder sees one kind of row.

What this module owns is only the mixing: which source is which (`sources`), how its rows are rendered (`rendered`)
and how many its weight keeps (`rows_kept`), and the record a run manifest keeps (`ranges`). Reading and drawing rows
are data.splits'.
"""

from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from arabic_sft.data.columns import DataSpec, Split
from arabic_sft.data.formats import READERS
from arabic_sft.runtime.errors import UserError


SOURCE = "source"  # the column that names each row's source (a mixture's group column by default)
# A mixture's rows: the prompt its source's template made, the answer, and the inputs alone (the data check compares
# rows by their words, not by the template around them, so that a row copied between two sources is found).
MIXTURE = DataSpec("template", "{prompt}", {"prompt": ("prompt",), "answer": ("answer",)}, "answer", {}, ("input",))
NAMES = {"prompt": "Prompt", "answer": "Answer"}
# A source's keys that are no recipe field: recipe.schema's SOURCE_KEYS (tests/test_mixture.py holds them equal).
OURS = {"id", "path", "name", "split", "fraction", "rows", "task"}
DATA_FIELDS = ("train_file", "validation_file", "test_file", "dataset_name", "dataset_config", "dataset_revision",
               "train_split", "validation_split", "test_split")  # fmt: skip


@dataclass(frozen=True)
class Source:
    """One source of a mixture: its id, the recipe's fields with the source's own over them (`args`, as a one-source
    recipe), and its weight (a fraction of its training rows, or a number of them; neither: all)."""

    id: str
    args: object
    fraction: float | None
    rows: int | None

    def weight(self) -> dict:
        return {"fraction": self.fraction} if self.fraction is not None else {"rows": self.rows} if self.rows else {}


def sources(args) -> list[Source]:
    """The recipe's sources, in its order. TRL's names are read as ours: `path` a dataset or data file (a file whose
    suffix the project reads is a `train_file`), `name` its configuration, `split` its training split."""
    found = []
    for entry in args.datasets:  # checked, each with its id, by the recipe's schema (recipe.schema.check_sources)
        own = {key: value for key, value in entry.items() if key not in OURS}
        if path := entry.get("path"):
            own.setdefault("train_file" if Path(str(path)).suffix.lower() in READERS else "dataset_name", path)
        own.update({ours: entry[theirs] for theirs, ours in (("name", "dataset_config"), ("split", "train_split"))
                    if theirs in entry})  # fmt: skip
        name = entry["id"]
        cleared = {field: None for field in DATA_FIELDS if field != "train_split"}
        try:
            view = replace(args, datasets=None, **{**cleared, "train_split": "train", **own})
        except ValueError as error:
            raise UserError(f"datasets: {name}: {error}") from None
        found.append(Source(name, view, entry.get("fraction"), entry.get("rows")))
    return found


def rows_kept(num_rows: int, source: Source) -> int | None:
    """How many of the source's `num_rows` training rows its weight keeps (None: all of them)."""
    keep = source.rows if source.rows is not None else round(num_rows * source.fraction) if source.fraction else None
    if keep is not None and keep > num_rows:
        raise UserError(f"datasets: {source.id}: rows {keep}: its training split has {num_rows} rows")
    return None if keep is None or keep == num_rows else max(1, keep)


def rendered(split: Split, spec: DataSpec, source: str) -> pd.DataFrame:
    """A source's split as a mixture's rows: its prompt template filled, the answer ("" in a test file without
    one), its inputs joined (what the data check compares), its source, and the columns it carries."""
    if spec.kind != "template":
        raise UserError(
            f"datasets: {source}: its rows are {spec.kind.replace('_', '/')} data; a mixture's sources are rows that "
            "a prompt_template (or task) makes into a prompt and an answer"
        )
    frame, inputs = split.frame, spec.inputs
    cells = frame[inputs].to_dict("records")
    return pd.DataFrame(
        {
            "prompt": [spec.template.format(**row) for row in cells],
            "answer": frame[spec.answer] if spec.answer in frame.columns else "",
            "input": ["\n".join(row[name] for name in inputs) for row in cells],
            SOURCE: source,
            **{name: frame[name] for name in split.carried},
        }
    )


def ranges(positions) -> list[list[int]]:
    """Sorted positions as [first, last] runs ([0..9, 12] -> [[0, 9], [12, 12]]): a million rows used whole is one
    run in the run manifest."""
    runs: list[list[int]] = []
    for position in positions:
        if runs and position == runs[-1][1] + 1:
            runs[-1][1] = position
        else:
            runs.append([position, position])
    return runs
