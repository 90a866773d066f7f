"""Repeated, near-duplicate and contaminated rows, compared after the project's Arabic normalization (diacritics,
tatweel, alef, yaa and taa marbuta forms, case; punctuation is not a word: arabic_sft.data.arabic).

- exact: two rows whose normalized words are the same;
- near: the Jaccard similarity of their word shingles (`shingle_size` words each) is at least the threshold.
  Candidates come from MinHash LSH (datasketch), so the search is not quadratic; each candidate pair is then
  confirmed by its true Jaccard similarity, which is the similarity reported;
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

from arabic_sft.data.arabic import words


NUM_PERM = 128  # MinHash permutations, cut into LSH bands by `lsh_bands`
MISS = 1e-3  # the highest chance that LSH misses a pair exactly at the threshold (more similar ones: less)
MINHASH_SEED = 1
PAIR_COLUMNS = ("kind", "split_a", "row_a", "split_b", "row_b", "similarity", "text_a", "text_b")


def row_words(row: dict, fields: Sequence[str]) -> list[str]:
    return [word for name in fields for word in words(row.get(name, ""))]


def row_text(row: dict, fields: Sequence[str]) -> str:
    """A row's fields as one text for the pairs file (chat turns as JSON)."""
    parts = [row.get(name, "") for name in fields]
    return " | ".join(json.dumps(part, ensure_ascii=False) if isinstance(part, list) else str(part) for part in parts)


def shingles(tokens: Sequence[str], size: int) -> set[str]:
    """The `size`-word shingles of `tokens` (a text shorter than `size` words is one shingle)."""
    if len(tokens) <= size:
        return {" ".join(tokens)} if tokens else set()
    return {" ".join(tokens[i : i + size]) for i in range(len(tokens) - size + 1)}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


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


class NearIndex:
    """Texts (their shingle sets) indexed for near-duplicate search: exact copies by their words, the rest by MinHash
    LSH (datasketch), each candidate confirmed by its true Jaccard similarity."""

    def __init__(self, texts: Sequence[list[str]], threshold: float, size: int):
        from datasketch import MinHashLSH

        self.threshold, self.size = threshold, size
        self.keys = [tuple(tokens) for tokens in texts]
        self.sets = [shingles(tokens, size) for tokens in texts]
        self.copies: dict[tuple, list[int]] = defaultdict(list)  # the same words: their rows, in order
        for number, key in enumerate(self.keys):
            self.copies[key].append(number)
        self.first = [group[0] for group in self.copies.values()]  # one row per exact group goes into the LSH
        self.lsh = MinHashLSH(num_perm=NUM_PERM, params=lsh_bands(threshold))
        self.signatures = dict(zip(self.first, signatures([self.sets[i] for i in self.first])))
        with self.lsh.insertion_session() as session:
            for number in self.first:
                session.insert(number, self.signatures[number], check_duplication=False)

    def matches(self, tokens: Sequence[str], signature=None) -> list[tuple[int, float, bool]]:
        """(row, similarity, exact) of every indexed row like `tokens`: its exact copies, then the confirmed near
        ones (with their exact copies)."""
        key = tuple(tokens)
        found = [(row, 1.0, True) for row in self.copies.get(key, [])]
        own = shingles(tokens, self.size)
        if not own:
            return found
        for first in self.lsh.query(signature if signature is not None else signatures([own])[0]):
            if self.keys[first] == key:
                continue
            similarity = jaccard(own, self.sets[first])
            if similarity >= self.threshold:
                found += [(row, similarity, False) for row in self.copies[self.keys[first]]]
        return found


def signatures(sets: Sequence[set[str]]) -> list:
    """The MinHash of each shingle set (datasketch, vectorized per set)."""
    from datasketch import LeanMinHash, MinHash

    return [LeanMinHash(m) for m in MinHash.bulk([[s.encode() for s in x] for x in sets], num_perm=NUM_PERM,
                                                   seed=MINHASH_SEED)]  # fmt: skip


def duplicates_within(texts: Sequence[list[str]], threshold: float, size: int, near: bool = True):
    """(earlier row, later row, similarity, exact) of every duplicate pair within one split; a later exact copy is
    paired with the first of its group only."""
    index = NearIndex(texts, threshold, size)
    pairs = []
    for group in index.copies.values():
        pairs += [(group[0], later, 1.0, True) for later in group[1:]]
    if near:
        for first in index.first:
            for row, similarity, exact in index.matches(index.keys[first], index.signatures[first]):
                if not exact and row > first and index.copies[index.keys[row]][0] == row:
                    pairs.append((first, row, similarity, False))
    return pairs


def duplicates_across(train: Sequence[list[str]], other: Sequence[list[str]], threshold: float, size: int,
                      near: bool = True):  # fmt: skip
    """(train row, other row, similarity, exact) of every training row that copies a row of `other`."""
    index = NearIndex(train, threshold, size)
    pairs = []
    for row_b, tokens in enumerate(other):
        for row_a, similarity, exact in index.matches(tokens):
            if exact or near:
                pairs.append((row_a, row_b, similarity, exact))
    return pairs


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
    inputs = ["prompt"] if spec.kind == "prompt_completion" else list(spec.inputs)
    return inputs if other == "test" else [*inputs, spec.answer if spec.kind != "prompt_completion" else "completion"]


def contamination_sources(splits: dict, rows: dict, spec, questions: dict[str, list[str]]) -> tuple[dict, dict]:
    """What training rows must not contain: ({source: each item's words}, {source: each item's text}), the sources
    being the test inputs ("test") and each general task's questions ("general:TASK")."""
    sources: dict[str, list[list[str]]] = {}
    texts: dict[str, list[str]] = {}
    inputs = compared_fields(spec, "test")
    if "test" in splits and all(field in splits["test"].frame.columns for field in inputs):
        sources["test"] = [row_words(row, inputs) for row in rows["test"]]
        texts["test"] = [row_text(row, inputs) for row in rows["test"]]
    for task, items in questions.items():
        sources[f"general:{task}"] = [words(item) for item in items]
        texts[f"general:{task}"] = list(items)
    return sources, texts


def check(splits: dict, spec, settings: CheckSettings, questions: dict[str, list[str]] | None = None) -> list[Pair]:
    """Every exact, near and contaminated pair in the recipe's `splits` (arabic_sft.data.splits.read_as_trained),
    most similar first; `questions`: benchmark questions by task name, checked for contamination too."""
    train = splits["train"]
    rows = {name: split.frame.to_dict("records") for name, split in splits.items()}
    threshold, size, near = settings.near_duplicate_threshold, settings.shingle_size, True
    pairs: list[Pair] = []

    def add(kind, split_a, row_a, split_b, row_b, similarity, text_a, text_b):
        pairs.append(Pair(kind, split_a, row_a, split_b, row_b, round(similarity, 6), text_a, text_b))

    full = compared_fields(spec, "train")
    train_full = [row_words(row, full) for row in rows["train"]]
    for a, b, similarity, exact in duplicates_within(train_full, threshold, size, near):
        add("exact" if exact else "near", "train", train.positions[a], "train", train.positions[b], similarity,
            row_text(rows["train"][a], full), row_text(rows["train"][b], full))  # fmt: skip
    for name in ("validation", "test"):
        if name not in splits:
            continue
        fields = compared_fields(spec, name)
        if not all(field in splits[name].frame.columns for field in fields):
            continue
        mine = train_full if name == "validation" else [row_words(row, fields) for row in rows["train"]]
        theirs = [row_words(row, fields) for row in rows[name]]
        for a, b, similarity, exact in duplicates_across(mine, theirs, threshold, size, near):
            add("exact" if exact else "near", "train", train.positions[a], name, splits[name].positions[b],
                similarity, row_text(rows["train"][a], fields), row_text(rows[name][b], fields))  # fmt: skip
    sources, texts = contamination_sources(splits, rows, spec, questions or {})
    for a, source, b, similarity in contamination(train_full, sources, settings.contamination_ngram):
        row_b = splits["test"].positions[b] if source == "test" else b
        add("contaminated", "train", train.positions[a], source, row_b, similarity,
            row_text(rows["train"][a], full), texts[source][b])  # fmt: skip
    order = {"exact": 0, "near": 1, "contaminated": 2}
    return sorted(pairs, key=lambda p: (-p.similarity, order[p.kind], p.split_b, p.row_a, p.row_b))


def dropped_rows(pairs: Iterable[Pair], deduplicate: str, decontaminate: bool, positions: Sequence[int]) -> list[int]:
    """The training rows (positions in the train frame) to leave out: the later copy of each duplicate within train
    (the first copy kept: a row is dropped only as the copy of a row that is kept), every training row that copies a
    validation or test row, and with `decontaminate` every contaminated one."""
    kinds = {"none": set(), "exact": {"exact"}, "near": {"exact", "near"}}[deduplicate]
    at = {position: number for number, position in enumerate(positions)}
    drop: set[int] = set()
    within = defaultdict(list)
    for pair in pairs:
        if pair.kind in kinds and pair.split_b == "train":
            within[at[pair.row_b]].append(at[pair.row_a])
        elif pair.kind in kinds or (decontaminate and pair.kind == "contaminated"):
            drop.add(at[pair.row_a])
    exact_copies = {at[pair.row_b] for pair in pairs if pair.kind == "exact" and pair.split_b == "train"}
    for later in sorted(within):  # in order: an earlier row is decided before any later copy of it
        if later in exact_copies or any(earlier not in drop for earlier in within[later]):
            drop.add(later)
    return sorted(drop)


def counts(pairs: Sequence[Pair]) -> dict:
    """Pairs per kind and split pair, e.g. {"exact": {"train-train": 3}, "near": {"train-test": 1}}."""
    found: dict[str, Counter] = defaultdict(Counter)
    for pair in pairs:
        found[pair.kind][f"{pair.split_a}-{pair.split_b}"] += 1
    return {kind: dict(found[kind]) for kind in ("exact", "near", "contaminated") if kind in found}
