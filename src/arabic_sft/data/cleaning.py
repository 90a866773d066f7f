"""Repeated, near-duplicate and contaminated rows, compared after the project's Arabic normalization (diacritics,
tatweel, alef, yaa and taa marbuta forms, case; punctuation is not a word: arabic_sft.data.arabic).

- exact: two rows whose normalized words are the same;
- near: the Jaccard similarity of their word shingles (`shingle_size` words each) is at least the threshold.
  Candidates come from MinHash LSH (datasketch's MinHash and bands, computed for every row at once by
  arabic_sft.data.near), so the search is not quadratic; each candidate pair is then confirmed by its true Jaccard
  similarity, which is the similarity reported;
- contaminated: a training row shares a span of `ngram` words with a test input or a benchmark question; its
  similarity is the share of that question's `ngram`-word spans found in the training row.

Within train and between train and validation, rows are compared by their inputs and answer; between train and test
by the inputs (the test answer is never shown to the model). This is the one check of repeated rows: training runs
it before every run (arabic_sft.training.data_check), make data-check writes its pairs.
"""

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from arabic_sft.data.mixture import SOURCE
from arabic_sft.data.near import (
    Bound,
    Rows,
    Shingles,
    Vocabulary,
    band_keys,
    exact_groups,
    jaccards,
    joined,
    pairs_across,
    pairs_within,
    rows_sharing_a_span,
    signatures,
)


ENGINE = "near-2026-12-07"  # the engine's version: a check kept by another engine is made again (run_check's cache)
NUM_PERM = 128  # MinHash permutations, cut into LSH bands by `lsh_bands`
MISS = 1e-3  # the highest chance that LSH misses a pair exactly at the threshold (more similar ones: less)
MINHASH_SEED = 1
PAIR_COLUMNS = ("kind", "split_a", "row_a", "split_b", "row_b", "similarity", "text_a", "text_b")
SOURCE_COLUMNS = ("source_a", "source_b")  # a mixture's pairs: each row's source (data.mixture), its row in its file


def row_text(row: dict, fields: Sequence[str]) -> str:
    """A row's fields as one text for the pairs file (chat turns as JSON)."""
    parts = [row.get(name, "") for name in fields]
    return " | ".join(json.dumps(part, ensure_ascii=False) if isinstance(part, list) else str(part) for part in parts)


def ngrams(tokens: Sequence[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


@dataclass(frozen=True)
class Pair:
    kind: str  # exact, near, contaminated
    split_a: str
    row_a: int
    split_b: str
    row_b: int
    similarity: float
    text_a: str
    text_b: str
    source_a: str = ""  # a mixture's: the source of each row (row_a, row_b: positions in that source's file)
    source_b: str = ""

    def record(self) -> dict:
        return asdict(self)


def lsh_bands(threshold: float) -> tuple[int, int]:
    """(bands, rows per band) of the MinHash LSH: the most rows per band (the fewest dissimilar candidates to
    confirm) with which a pair at `threshold` is still a candidate with probability at least 1 - MISS."""
    for rows in range(NUM_PERM, 0, -1):
        bands = NUM_PERM // rows
        if (1 - threshold**rows) ** bands <= MISS:
            return bands, rows
    return NUM_PERM, 1


def contamination(train: Sequence[list[str]], sources: dict[str, Sequence[list[str]]], n: int):
    """(train row, source name, source row, similarity) of every training row that shares an `n`-word span with an
    item of a source (test inputs, a benchmark's questions); similarity: the share of that item's spans found."""
    spans: dict[tuple, list[tuple[str, int]]] = defaultdict(list)
    totals = {}
    for name, items in sources.items():
        for number, tokens in enumerate(items):
            own = ngrams(tokens, n)
            totals[(name, number)] = len(own)
            for span in own:
                spans[span].append((name, number))
    found = []
    for row, tokens in enumerate(train):
        hits = Counter(item for span in ngrams(tokens, n) if span in spans for item in spans[span])
        found += [(row, name, number, count / totals[(name, number)]) for (name, number), count in hits.items()]
    return found


@dataclass
class CheckSettings:
    """The check's settings, named as the recipe's fields (arabic_sft.recipe.schema, group `cleaning`)."""

    near_duplicate_threshold: float = 0.8
    shingle_size: int = 1
    contamination_ngram: int = 8
    deduplicate: str = "none"
    decontaminate: bool = False


def compared_fields(spec, other: str) -> list[str]:
    """The fields a training row is compared by against `other` (train, validation: inputs and answer; test: the
    inputs)."""
    if spec.kind == "messages":
        return ["messages"]
    inputs = ["prompt"] if spec.kind == "prompt_completion" else list(spec.compared or spec.inputs)
    return inputs if other == "test" else [*inputs, spec.answer if spec.kind != "prompt_completion" else "completion"]


class Texts:
    """The words of the splits' columns as ids (arabic_sft.data.near), read once: a split's text of some fields is
    each row's words of those fields, in order (a column the split lacks is empty)."""

    def __init__(self, splits: dict):
        self.splits, self.vocabulary, self.columns = splits, Vocabulary(), {}

    def column(self, split: str, field: str) -> Rows:
        if (split, field) not in self.columns:
            frame = self.splits[split].frame
            cells = frame[field].tolist() if field in frame.columns else [""] * len(frame)
            self.columns[split, field] = self.vocabulary.encode(cells)
        return self.columns[split, field]

    def text(self, split: str, fields: Sequence[str]) -> Rows:
        return joined([self.column(split, field) for field in fields])

    def row_texts(self, split: str, numbers: Sequence[int], fields: Sequence[str]) -> dict[int, str]:
        """{row: its fields as one text} of the rows `numbers` of a split, read from its frame at once."""
        frame, numbers = self.splits[split].frame, sorted(set(numbers))
        present = [field for field in fields if field in frame.columns]
        records = frame.iloc[numbers][present].to_dict("records")
        return {number: row_text(record, fields) for number, record in zip(numbers, records)}


class Index:
    """Rows indexed for near-duplicate search: exact copies grouped by their words, the first row of each group
    with its MinHash signature (datasketch's) and LSH band keys."""

    def __init__(self, rows: Rows, sets: Rows, hashes: np.ndarray, threshold: float):
        self.rows, self.sets, self.threshold = rows, sets, threshold
        self.groups = exact_groups(rows)
        self.first = np.asarray([group[0] for group in self.groups.values()], dtype=np.int64)
        self.group_of_first = {group[0]: group for group in self.groups.values()}
        self.bands = lsh_bands(threshold)
        self.members = self.first[sets.lengths[self.first] > 0]  # a row without shingles is never near another
        self.keys = band_keys_of(sets, hashes, self.bands, len(rows), self.members)
        self.bound = Bound(sets, threshold)


def band_keys_of(sets: Rows, hashes: np.ndarray, bands: tuple[int, int], rows: int, members: np.ndarray) -> list:
    """The LSH band keys of `members` (row numbers), in arrays over all `rows` (other rows: 0, never read)."""
    signed = signatures(sets.take(members), hashes, NUM_PERM, MINHASH_SEED)
    keys = []
    for band in band_keys(signed, *bands):
        full = np.zeros(rows, dtype=np.uint64)
        full[members] = band
        keys.append(full)
    return keys


def near_within(index: Index) -> list[tuple[int, int, float, bool]]:
    """(earlier row, later row, similarity, exact) of every duplicate pair within one text; a later exact copy is
    paired with the first of its group only, a near pair joins the first rows of two groups."""
    pairs = [(group[0], later, 1.0, True) for group in index.groups.values() for later in group[1:]]
    codes = pairs_within(index.keys, index.members, index.bound.possible)
    n = int(index.members.max()) + 1 if len(index.members) else 1
    a, b = codes // n, codes % n
    similar = jaccards(index.sets, a, index.sets, b)
    keep = similar >= index.threshold
    return pairs + [(int(x), int(y), float(z), False) for x, y, z in zip(a[keep], b[keep], similar[keep])]


def near_across(index: Index, other: Rows, other_sets: Rows, hashes: np.ndarray) -> list[tuple[int, int, float, bool]]:
    """(indexed row, other row, similarity, exact) of every indexed row that copies a row of `other`: its exact
    copies, and every row of a group whose first row is near it."""
    pairs, same = [], np.full(len(other), -1, dtype=np.int64)  # each other row's exact copy's first row, if any
    for number in range(len(other)):
        group = index.groups.get(other.row(number).tobytes())
        if group:
            pairs += [(row, number, 1.0, True) for row in group]
            same[number] = group[0]
    asking = np.flatnonzero(other_sets.lengths > 0)
    if not len(asking) or not len(index.members):
        return pairs
    theirs = band_keys_of(other_sets, hashes, index.bands, len(other), asking)
    a, b = pairs_across(index.keys, index.members, theirs, asking)
    keep = (same[b] != a) & index.bound.possible(a, b, Bound(other_sets, index.threshold))
    a, b = a[keep], b[keep]
    similar = jaccards(index.sets, a, other_sets, b)
    near = similar >= index.threshold
    for first, number, similarity in zip(a[near], b[near], similar[near]):
        pairs += [(row, int(number), float(similarity), False) for row in index.group_of_first[int(first)]]
    return pairs


def check(splits: dict, spec, settings: CheckSettings, questions: dict[str, list[str]] | None = None) -> list[Pair]:
    """Every exact, near and contaminated pair in the recipe's `splits` (arabic_sft.data.splits.read_as_trained),
    most similar first; `questions`: benchmark questions by task name, checked for contamination too."""
    from tqdm.auto import tqdm

    texts = Texts(splits)
    threshold, size = settings.near_duplicate_threshold, settings.shingle_size
    found: list[tuple] = []  # (kind, train row, split, its row, similarity, fields a, fields b or a benchmark's text)
    bar = tqdm(total=4, desc=f"data check of {len(splits['train'].frame):,} training rows", unit="step", disable=None)
    bar.set_postfix_str("words, within train")  # a terminal's only: tqdm says nothing into a log (disable=None)
    full = compared_fields(spec, "train")
    train_full = texts.text("train", full)
    others = {name: compared_fields(spec, name) for name in ("validation", "test") if name in splits}
    others = {name: fields for name, fields in others.items()
              if all(field in splits[name].frame.columns for field in fields)}  # fmt: skip
    validation = texts.text("validation", others["validation"]) if "validation" in others else None
    shingled = Shingles([train_full, *([validation] if validation is not None else [])], size, texts.vocabulary)
    index = Index(train_full, shingled.sets[0], shingled.hashes, threshold)
    found += [(kind(exact), a, "train", b, similarity, full, full) for a, b, similarity, exact in near_within(index)]
    if validation is not None:
        found += [
            (kind(exact), a, "validation", b, similarity, full, full)
            for a, b, similarity, exact in near_across(index, validation, shingled.sets[1], shingled.hashes)
        ]
    del index, shingled  # a million rows: the next index's memory
    bar.update(2)
    bar.set_postfix_str("train against test")
    if "test" in others:
        fields = others["test"]
        mine, theirs = texts.text("train", fields), texts.text("test", fields)
        inputs = Shingles([mine, theirs], size, texts.vocabulary)
        inputs_index = Index(mine, inputs.sets[0], inputs.hashes, threshold)
        found += [
            (kind(exact), a, "test", b, similarity, fields, fields)
            for a, b, similarity, exact in near_across(inputs_index, theirs, inputs.sets[1], inputs.hashes)
        ]
        del inputs_index, inputs
    bar.update(1)
    bar.set_postfix_str("contamination")
    sources, items = contamination_items(texts, others, spec, questions or {})
    n = settings.contamination_ngram
    candidates = rows_sharing_a_span(train_full, list(sources.values()), n)
    tokens = {name: [rows.row(i).tolist() for i in range(len(rows))] for name, rows in sources.items()}
    for k, source, b, similarity in contamination([train_full.row(i).tolist() for i in candidates], tokens, n):
        fields_b = others["test"] if source == "test" else items[source][b]
        found.append(("contaminated", int(candidates[k]), source, b, similarity, full, fields_b))
    bar.update(1)
    bar.close()
    return pairs_of(found, splits, texts)


def kind(exact: bool) -> str:
    return "exact" if exact else "near"


def pairs_of(found: list[tuple], splits: dict, texts: Texts) -> list[Pair]:
    """The `Pair`s of what `check` found, with their rows' texts (read at once per split and fields), sorted: most
    similar first."""
    wanted: dict[tuple, set[int]] = defaultdict(set)
    for _, a, split, b, _, fields_a, fields_b in found:
        wanted["train", tuple(fields_a)].add(a)
        if not isinstance(fields_b, str):
            wanted[split, tuple(fields_b)].add(b)
    read = {key: texts.row_texts(key[0], sorted(rows), key[1]) for key, rows in wanted.items()}
    train = splits["train"]
    origin = {name: split.frame[SOURCE].tolist() if SOURCE in split.frame.columns else None
              for name, split in splits.items()}  # fmt: skip
    pairs = []
    for name, a, split, b, similarity, fields_a, fields_b in found:
        text_b = fields_b if isinstance(fields_b, str) else read[split, tuple(fields_b)][b]
        position_b = splits[split].positions[b] if split in splits else b
        sources = (origin["train"][a], origin[split][b] if split in splits else "") if origin["train"] else ()
        pairs.append(Pair(name, "train", train.positions[a], split, position_b, round(similarity, 6),
                          read["train", tuple(fields_a)][a], text_b, *sources))  # fmt: skip
    order = {"exact": 0, "near": 1, "contaminated": 2}
    return sorted(pairs, key=lambda p: (-p.similarity, order[p.kind], p.split_b, p.row_a, p.row_b, p.source_a,
                                        p.source_b))  # fmt: skip


def contamination_items(texts: Texts, others: dict, spec, questions: dict[str, list[str]]) -> tuple[dict, dict]:
    """What training rows must not contain: ({source: each item's words as ids}, {source: each benchmark item's
    text}), the sources being the test inputs ("test") and each general task's questions ("general:TASK")."""
    sources: dict[str, Rows] = {}
    items: dict[str, list[str]] = {}
    if "test" in others:
        sources["test"] = texts.text("test", compared_fields(spec, "test"))
    for task, found in questions.items():
        sources[f"general:{task}"] = texts.vocabulary.encode(list(found))
        items[f"general:{task}"] = list(found)
    return sources, items


def dropped_rows(
    pairs: Iterable[Pair], deduplicate: str, decontaminate: bool, positions: Sequence[int], sources: Sequence = ()
) -> list[int]:
    """The training rows (positions in the train frame) to leave out: the later copy of each duplicate within train
    (the first copy kept: a row is dropped only as the copy of a row that is kept), every training row that copies a
    validation or test row, and with `decontaminate` every contaminated one. `sources`: a mixture's, each training
    row's source (a row is its source and its position in that source's file)."""
    kinds = {"none": set(), "exact": {"exact"}, "near": {"exact", "near"}}[deduplicate]
    at = {(source, position): number for number, (source, position)
          in enumerate(zip(sources or [""] * len(positions), positions))}  # fmt: skip
    drop: set[int] = set()
    within = defaultdict(list)
    exact_copies = set()
    for pair in pairs:
        a, b = at[pair.source_a, pair.row_a], at.get((pair.source_b, pair.row_b))  # b: a training row's number
        if pair.kind in kinds and pair.split_b == "train":
            within[b].append(a)
        elif pair.kind in kinds or (decontaminate and pair.kind == "contaminated"):
            drop.add(a)
        if pair.kind == "exact" and pair.split_b == "train":
            exact_copies.add(b)
    for later in sorted(within):  # in order: an earlier row is decided before any later copy of it
        if later in exact_copies or any(earlier not in drop for earlier in within[later]):
            drop.add(later)
    return sorted(drop)


def counts(pairs: Sequence[Pair], by_source: bool = False) -> dict:
    """Pairs per kind and split pair, e.g. {"exact": {"train-train": 3}, "near": {"train-test": 1}}; `by_source`:
    per kind and pair of a mixture's sources and splits, e.g. {"exact": {"train:medical-test:proverbs": 1}}."""
    found: dict[str, Counter] = defaultdict(Counter)
    for pair in pairs:
        if by_source:
            found[pair.kind][f"{pair.split_a}:{pair.source_a}-{pair.split_b}:{pair.source_b or '-'}"] += 1
        else:
            found[pair.kind][f"{pair.split_a}-{pair.split_b}"] += 1
    return {kind: dict(found[kind]) for kind in ("exact", "near", "contaminated") if kind in found}
