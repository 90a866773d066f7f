"""The data check's engine at scale: rows as integer word ids (one flat array and offsets per text column, not a
Python list of strings per row), MinHash signatures computed for every row at once, LSH bands grouped by sorting,
and every candidate pair confirmed by its exact Jaccard similarity, a block of pairs at a time; contamination spans
found by their hashes, then counted exactly. What it finds is what one row at a time through datasketch found: the
same signatures (datasketch's own permutations and hash mixing, checked against `MinHash.bulk` by the tests), the
same bands, the same confirmation, so the same pairs. Written here because datasketch works one set at a time (its
`MinHashLSH.insert` and `query` are Python calls per row and band: 2.5 million of them for 100,000 rows), which
made the check grow with the square of the rows."""

import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from datasketch.hashfunc import sha1_hash32  # datasketch's default hash of a value, as MinHash.bulk hashes it


THREADS = max(1, min(2, os.cpu_count() or 1))  # numpy's loops release the GIL: two blocks at once on two cores
BLOCK = 1 << 16  # shingles (signatures) or pairs (confirmation) per block: tens of MB of temporaries each
# Cells at and above which the words are found in worker processes (below: the processes cost more than they save).
PARALLEL_CELLS = 50_000


@dataclass
class Rows:
    """Rows of integer ids, flat: row i is ids[offsets[i]:offsets[i + 1]]."""

    ids: np.ndarray  # int64
    offsets: np.ndarray  # int64, len = rows + 1

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def row(self, number: int) -> np.ndarray:
        return self.ids[self.offsets[number] : self.offsets[number + 1]]

    def take(self, numbers: np.ndarray) -> "Rows":
        """The rows `numbers`, in that order."""
        lengths = self.lengths[numbers]
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        return Rows(self.ids[gather(self.offsets[numbers], lengths)], offsets)

    def row_numbers(self) -> np.ndarray:
        """The row of each id."""
        return np.repeat(np.arange(len(self), dtype=np.int64), self.lengths)


def distinct(values: np.ndarray) -> np.ndarray:
    """The sorted distinct values (np.unique, by sorting: numpy 2.4's np.unique of int64 hashes, 100 times slower
    here on millions of values)."""
    values = np.sort(values)
    return values[np.concatenate([[True], values[1:] != values[:-1]])] if len(values) else values


def gather(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The positions starts[i] .. starts[i] + lengths[i] - 1 of every i, concatenated."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    before = np.cumsum(lengths) - lengths
    return np.repeat(starts - before, lengths) + np.arange(total, dtype=np.int64)


def joined(parts: Sequence[Rows]) -> Rows:
    """Each row's ids of `parts` one after the other (the words of several columns of a row, in order)."""
    if len(parts) == 1:
        return parts[0]
    lengths = sum(part.lengths for part in parts)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    ids = np.empty(int(offsets[-1]), dtype=np.int64)
    start = offsets[:-1].copy()
    for part in parts:
        ids[gather(start, part.lengths)] = part.ids
        start += part.lengths
    return Rows(ids, offsets)


def _words_of(values: list) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(the distinct words, each word's number among them, each cell's word count) of `values` (a worker's part)."""
    from arabic_sft.data.arabic import words

    local: dict[str, int] = {}
    codes, lengths = [], []
    for value in values:
        found = words(value)
        codes += [local.setdefault(word, len(local)) for word in found]
        lengths.append(len(found))
    return list(local), np.asarray(codes, dtype=np.int64), np.asarray(lengths, dtype=np.int64)


class Vocabulary:
    """Normalized words (arabic_sft.data.arabic.words) to integer ids, the same ids for every column and split."""

    def __init__(self):
        self.ids: dict[str, int] = {}

    def words(self) -> list[str]:
        return list(self.ids)

    def encode(self, values: list) -> Rows:
        """The words of each cell of `values` as ids; in worker processes when there are many cells."""
        parts = [values[start : start + PARALLEL_CELLS // 4] for start in range(0, len(values), PARALLEL_CELLS // 4)]
        if len(values) >= PARALLEL_CELLS and THREADS > 1 and "fork" in multiprocessing.get_all_start_methods():
            # forked workers (as `datasets.map(num_proc=...)` uses): they run this module's pure-Python words only
            with multiprocessing.get_context("fork").Pool(THREADS) as pool:
                found = pool.map(_words_of, parts)
        else:
            found = [_words_of(part) for part in parts]
        ids, lengths = [], []
        for uniques, codes, counts in found:
            mapping = np.asarray([self.ids.setdefault(word, len(self.ids)) for word in uniques], dtype=np.int64)
            ids.append(mapping[codes] if len(codes) else codes)
            lengths.append(counts)
        lengths = np.concatenate(lengths) if lengths else np.zeros(0, dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        return Rows(np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64), offsets)


def exact_groups(rows: Rows) -> dict[bytes, list[int]]:
    """Rows with the same words: {their ids' bytes: the rows, in order}."""
    groups: dict[bytes, list[int]] = {}
    ids, offsets = rows.ids, rows.offsets
    for number in range(len(rows)):
        groups.setdefault(ids[offsets[number] : offsets[number + 1]].tobytes(), []).append(number)
    return groups


class Shingles:
    """The shingles of several texts' rows numbered together (the same shingle has the same number everywhere), and
    each shingle's text hashed as datasketch hashes it (sha1_hash32 of its UTF-8 words joined by spaces)."""

    def __init__(self, texts: Sequence[Rows], size: int, vocabulary: Vocabulary):
        words = vocabulary.words()
        if size == 1:  # a word is a shingle: its id is its number
            self.sets = [unique_per_row(rows.ids, rows.row_numbers(), len(rows)) for rows in texts]
            used = distinct(np.concatenate([rows.ids for rows in self.sets])) if self.sets else np.zeros(0, int)
            self.hashes = np.zeros(len(words), dtype=np.uint32)
            self.hashes[used] = [sha1_hash32(words[i].encode()) for i in used]
            return
        grams, owners = [], []
        for part, rows in enumerate(texts):
            matrix, row_of = kgrams(rows, size)
            grams.append(matrix)
            owners.append((part, row_of))
        shingles, numbers = np.unique(np.concatenate(grams), axis=0, return_inverse=True)
        numbers = numbers.reshape(-1)
        self.sets, start = [], 0
        for (part, row_of), matrix in zip(owners, grams):
            mine = numbers[start : start + len(matrix)]
            start += len(matrix)
            self.sets.append(unique_per_row(mine, row_of, len(texts[part])))
        self.hashes = np.asarray([sha1_hash32(" ".join(words[i] for i in gram if i >= 0).encode())
                                  for gram in shingles], dtype=np.uint32)  # fmt: skip


def unique_per_row(values: np.ndarray, row_of: np.ndarray, rows: int) -> Rows:
    """Each row's distinct `values`, sorted (`row_of`: each value's row, ascending)."""
    if len(values) == 0:
        return Rows(np.zeros(0, dtype=np.int64), np.zeros(rows + 1, dtype=np.int64))
    width = int(values.max()) + 1
    keys = distinct(row_of * width + values)
    counts = np.bincount(keys // width, minlength=rows)
    return Rows(keys % width, np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))


def kgrams(rows: Rows, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(one row of `size` ids per shingle: every `size` consecutive words of a row, or a shorter row's words padded
    with -1; each shingle's row), as the definition makes them (tests/test_data_check.py `shingles`)."""
    lengths = rows.lengths
    long = np.maximum(lengths - size + 1, 0)
    starts = gather(rows.offsets[:-1], long)
    matrix = np.stack([rows.ids[starts + k] for k in range(size)], axis=1) if len(starts) else np.zeros((0, size))
    short = np.flatnonzero((lengths > 0) & (lengths <= size - 1))  # one shingle: the whole row
    padded = np.full((len(short), size), -1, dtype=np.int64)
    for k in range(size - 1):
        has = lengths[short] > k
        padded[has, k] = rows.ids[rows.offsets[short[has]] + k]
    row_of = np.concatenate([np.repeat(np.arange(len(rows)), long), short])
    order = np.argsort(row_of, kind="stable")
    return np.concatenate([matrix.astype(np.int64), padded])[order], row_of[order]


def signatures(sets: Rows, hashes: np.ndarray, num_perm: int, seed: int) -> np.ndarray:
    """Each row's MinHash (rows x num_perm, uint32), as datasketch's MinHash (scheme affine32) of its shingles'
    texts: its permutations and hash mixing, the minimum over the shingles; a row without shingles keeps
    datasketch's initial values (all 2^32 - 1)."""
    from datasketch import MinHash
    from datasketch.minhash import _fmix  # the library's own mixing, so that the signatures are its signatures

    a, b = MinHash(num_perm=num_perm, seed=seed).permutations
    mixed = _fmix(hashes.astype(np.uint32), 32)
    out = np.full((len(sets), num_perm), np.iinfo(np.uint32).max, dtype=np.uint32)
    filled = np.flatnonzero(sets.lengths > 0)
    blocks, start = [], 0
    while start < len(filled):  # rows whose shingles fill about one block
        stop = int(np.searchsorted(sets.offsets[filled + 1], sets.offsets[filled[start]] + BLOCK, side="right"))
        blocks.append(filled[start : max(stop, start + 1)])
        start = max(stop, start + 1)

    def one(block: np.ndarray) -> None:
        lengths = sets.lengths[block]
        values = mixed[sets.ids[gather(sets.offsets[block], lengths)]]
        permuted = a[:, None] * values[None, :] + b[:, None]  # uint32: wraps, as datasketch's
        out[block] = np.minimum.reduceat(permuted, np.cumsum(lengths) - lengths, axis=1).T

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(one, blocks))
    return out


def band_keys(signatures: np.ndarray, bands: int, rows: int) -> list[np.ndarray]:
    """One 64-bit key per row and LSH band (datasketch's bands: rows i*r .. (i+1)*r - 1 of the signature): rows
    with the same band have the same key (a key shared by different bands only adds a candidate to confirm)."""
    keys = []
    for band in range(bands):
        key = np.zeros(len(signatures), dtype=np.uint64)
        for column in range(band * rows, (band + 1) * rows):
            key = (key * np.uint64(0x100000001B3)) ^ signatures[:, column].astype(np.uint64)
        keys.append(key)
    return keys


def pairs_within(keys: list[np.ndarray], members: np.ndarray, keep=None) -> np.ndarray:
    """The distinct pairs (i < j, as codes i * n + j) among `members` (row numbers) sharing a band key; `keep(a, b)`:
    which of a band's pairs may be similar enough to keep (each band's pairs are sifted before the next's are
    made: the pairs of every band at once would not fit in memory at a million rows)."""
    n = int(members.max()) + 1 if len(members) else 1
    found = []
    for key in keys:
        order = np.argsort(key[members], kind="stable")
        rows, sorted_keys = members[order], key[members][order]
        starts = np.flatnonzero(np.concatenate([[True], sorted_keys[1:] != sorted_keys[:-1]]))
        sizes = np.diff(np.concatenate([starts, [len(rows)]]))
        group_start = np.repeat(starts, sizes)
        position = np.arange(len(rows))
        later = np.repeat(sizes, sizes) - (position - group_start) - 1  # the members after each one in its group
        left = np.repeat(position, later)
        right = left + 1 + (np.arange(len(left)) - np.repeat(np.cumsum(later) - later, later))
        a, b = np.minimum(rows[left], rows[right]), np.maximum(rows[left], rows[right])
        if keep is not None:
            kept = keep(a, b)
            a, b = a[kept], b[kept]
        found.append(distinct(a * n + b))
    return distinct(np.concatenate(found)) if found else np.zeros(0, dtype=np.int64)


class Bound:
    """An exact upper bound on the common shingles of two rows, from each row's count of shingles per bucket (its
    ids modulo BUCKETS): two rows have at most the sum over buckets of the smaller count in common. With the rows'
    sizes it sets aside, without computing their Jaccard similarity, the candidate pairs that cannot reach the
    threshold: the unrelated rows that share one LSH band by chance (99.7% of the candidates at 300,000 rows)."""

    BUCKETS = 64

    def __init__(self, sets: Rows, threshold: float):
        self.sets, self.threshold = sets, threshold
        kind = np.uint8 if int(sets.lengths.max(initial=0)) < 256 else np.uint16
        self.counts = np.zeros((len(sets), self.BUCKETS), dtype=kind)
        np.add.at(self.counts, (sets.row_numbers(), sets.ids % self.BUCKETS), 1)

    def possible(self, a: np.ndarray, b: np.ndarray, other: "Bound | None" = None) -> np.ndarray:
        """Whether row a[k] (of these sets) and row b[k] (of `other`'s, else these) may be similar at the threshold:
        J >= t needs |A & B| >= t (|A| + |B|) / (1 + t), and |A| >= t |B| (with a margin: kept when in doubt)."""
        other = other or self
        out = np.zeros(len(a), dtype=bool)

        def one(start: int) -> None:
            x, y = a[start : start + BLOCK * 4], b[start : start + BLOCK * 4]
            size_x, size_y = self.sets.lengths[x], other.sets.lengths[y]
            sized = np.minimum(size_x, size_y) >= self.threshold * np.maximum(size_x, size_y) - 1e-9
            x, y, size_x, size_y = x[sized], y[sized], size_x[sized], size_y[sized]
            common = np.minimum(self.counts[x], other.counts[y]).sum(axis=1, dtype=np.int64)
            enough = common >= self.threshold * (size_x + size_y) / (1 + self.threshold) - 1e-9
            out[start + np.flatnonzero(sized)[enough]] = True

        with ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(one, range(0, len(a), BLOCK * 4)))
        return out


def pairs_across(keys: list[np.ndarray], indexed: np.ndarray, other_keys: list[np.ndarray],
                 asking: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(indexed row, asking row) of every distinct pair that shares a band key, sorted."""
    width = int(asking.max()) + 1 if len(asking) else 1
    found = []
    for key, other in zip(keys, other_keys):
        order = np.argsort(key[indexed], kind="stable")
        sorted_keys, rows = key[indexed][order], indexed[order]
        asked = other[asking]
        low, high = np.searchsorted(sorted_keys, asked, "left"), np.searchsorted(sorted_keys, asked, "right")
        counts = high - low
        found.append(rows[gather(low, counts)] * width + np.repeat(asking, counts))
    codes = distinct(np.concatenate(found)) if found else np.zeros(0, dtype=np.int64)
    return codes // width, codes % width


def jaccards(sets_a: Rows, a: np.ndarray, sets_b: Rows, b: np.ndarray) -> np.ndarray:
    """The Jaccard similarity of row a[k] of `sets_a` and row b[k] of `sets_b` (sorted distinct ids) for every k,
    by the definition (|A & B| / |A | B|, 1.0 for two empty sets), a block of pairs at a time."""
    out = np.empty(len(a), dtype=np.float64)
    blocks = [slice(start, start + BLOCK) for start in range(0, len(a), BLOCK)]
    width = int(max(sets_a.ids.max(initial=0), sets_b.ids.max(initial=0))) + 1

    def keyed(sets: Rows, rows: np.ndarray, lengths: np.ndarray) -> np.ndarray:  # pair * width + id
        return (
            np.repeat(np.arange(len(rows), dtype=np.int64), lengths) * width
            + sets.ids[gather(sets.offsets[rows], lengths)]
        )

    def one(block: slice) -> None:
        left, right = a[block], b[block]
        length_a, length_b = sets_a.lengths[left], sets_b.lengths[right]
        keys = np.concatenate([keyed(sets_a, left, length_a), keyed(sets_b, right, length_b)])
        keys.sort()
        both = keys[1:][keys[1:] == keys[:-1]] // width  # an id in both sets: twice, side by side
        common = np.bincount(both, minlength=len(left))
        union = length_a + length_b - common
        with np.errstate(invalid="ignore", divide="ignore"):
            out[block] = np.where(union > 0, common / np.maximum(union, 1), 1.0)

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(one, blocks))
    return out


def span_hashes(rows: Rows, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(a 64-bit hash of every `n`-word span of each row, the span's row): equal spans have equal hashes."""
    long = np.maximum(rows.lengths - n + 1, 0)
    starts = gather(rows.offsets[:-1], long)
    key = np.zeros(len(starts), dtype=np.uint64)
    for k in range(n):
        key = (key * np.uint64(0x100000001B3)) ^ rows.ids[starts + k].astype(np.uint64)
    return key, np.repeat(np.arange(len(rows)), long)


def rows_sharing_a_span(train: Rows, sources: Sequence[Rows], n: int) -> np.ndarray:
    """The training rows with an `n`-word span whose hash is a span hash of a source's item: every row that shares
    a span with one (and, rarely, one whose hash only collides: the exact count then finds nothing), found a block
    of rows at a time."""
    wanted = [span_hashes(source, n)[0] for source in sources]
    if not wanted or not sum(len(found) for found in wanted):
        return np.zeros(0, dtype=np.int64)
    wanted = distinct(np.concatenate(wanted))
    found = []
    for start in range(0, len(train), BLOCK):
        block = train.take(np.arange(start, min(start + BLOCK, len(train))))
        keys, row_of = span_hashes(block, n)
        position = np.minimum(np.searchsorted(wanted, keys), len(wanted) - 1)
        found.append(start + distinct(row_of[wanted[position] == keys]))
    return np.concatenate(found)
