"""Clipped n-gram matches of many hypothesis/reference pairs at once, with numpy sorts instead of Counters per pair.

sacreBLEU's BLEU and chrF++ statistics and nltk's BLEU precisions count each pair's n-grams in Python `Counter`s:
about 1 ms a pair together, half of scoring 100,000 rows. The counts are integers, so counting them another way
gives the same statistics exactly (tests/test_metrics.py compares them with sacreBLEU's and nltk's own on every
sample answer); the tokens and every formula stay the libraries'. Hand-made because no library counts the n-grams of
many texts at once.
"""

from collections.abc import Sequence

import numpy as np


def token_ids(sequences: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
    """(every sequence's tokens as integers, one after another; each sequence's length): equal tokens, equal ids."""
    vocabulary: dict[str, int] = {}
    ids = [vocabulary.setdefault(token, len(vocabulary)) for sequence in sequences for token in sequence]
    return np.array(ids, dtype=np.int64), np.array([len(sequence) for sequence in sequences], dtype=np.int64)


def character_ids(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """`token_ids` of texts' characters: their code points."""
    points = np.frombuffer("".join(texts).encode("utf-32-le"), dtype="<u4").astype(np.int64)
    return points, np.array([len(text) for text in texts], dtype=np.int64)


# Pairs counted at a time: bounds the sort keys (an n-gram's number × the pairs) far below int64's range.
CHUNK_PAIRS = 1000


def ngram_matches(ids: np.ndarray, lengths: np.ndarray, max_order: int) -> np.ndarray:
    """For n = 1..max_order and each pair, [its hypothesis's n-grams, its reference's n-grams, the n-grams they share
    with clipped counts (Σ over n-grams of the smaller count)], as int64 of shape (max_order, 3, pairs).

    `ids`, `lengths`: from `token_ids` or `character_ids` of the pairs' hypotheses followed by their references.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    pairs = len(lengths) // 2
    if pairs <= CHUNK_PAIRS:
        return chunk_matches(ids, lengths, max_order)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    parts = []
    for start in range(0, pairs, CHUNK_PAIRS):
        end = min(start + CHUNK_PAIRS, pairs)
        texts = [ids[offsets[start] : offsets[end]], ids[offsets[pairs + start] : offsets[pairs + end]]]
        part_lengths = np.concatenate([lengths[start:end], lengths[pairs + start : pairs + end]])
        parts.append(chunk_matches(np.concatenate(texts), part_lengths, max_order))
    return np.concatenate(parts, axis=2)


def chunk_matches(ids: np.ndarray, lengths: np.ndarray, max_order: int) -> np.ndarray:
    """`ngram_matches` of up to CHUNK_PAIRS pairs. One sort an order: each n-gram is a number (an (n-1)-gram's
    number and one more token), sorted with its pair and side as (n-gram, pair, side) keys, so that a run of equal
    keys is an n-gram's count in one text, and a hypothesis's run is followed by its reference's when both hold the
    n-gram. Numbers, not hashes: no collisions."""
    pairs = len(lengths) // 2
    counts = np.zeros((max_order, 3, pairs), dtype=np.int64)
    for order in range(1, max_order + 1):
        counts[order - 1, :2] = np.maximum(lengths - order + 1, 0).reshape(2, pairs)
    if not len(ids):
        return counts
    text = np.repeat(np.arange(2 * pairs), lengths)  # the text of each token
    room = np.cumsum(lengths)[text] - np.arange(len(ids))  # tokens from each position to its text's end
    code = text % pairs * 2 + text // pairs  # (pair, side): a hypothesis's code is even, its reference's the next
    distinct = np.unique(ids)
    tokens = np.searchsorted(distinct, ids)
    width = len(distinct)
    if len(ids) * width * 2 * pairs >= 2**63:  # (an n-gram's number < len(ids) × width)
        raise ValueError(f"{len(ids)} tokens in {pairs} pairs: too many to count at once")
    grams = tokens  # the number of the n-gram that starts at each position
    for order in range(1, max_order + 1):
        if order > 1:
            grams = grams[:-1] * width + tokens[order - 1 :]
        starts = np.flatnonzero(room[: len(grams)] >= order)
        if not len(starts):
            break
        keys = grams[starts] * (2 * pairs) + code[starts]
        last = order == max_order
        sorting = None if last else np.argsort(keys)
        keys = np.sort(keys) if last else keys[sorting]
        first = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]]))
        if not last:  # number this order's n-grams densely for the next order
            gram = keys // (2 * pairs)
            grams = np.zeros(len(grams), dtype=np.int64)
            grams[starts[sorting]] = np.cumsum(np.concatenate([[True], gram[1:] != gram[:-1]])) - 1
        run = np.diff(np.append(first, len(keys)))  # how often each (n-gram, pair, side) occurs
        held = keys[first]
        shared = np.flatnonzero((held[:-1] % 2 == 0) & (held[1:] == held[:-1] + 1))
        clipped = np.minimum(run[shared], run[shared + 1])
        pair = held[shared] % (2 * pairs) // 2
        counts[order - 1, 2] = np.bincount(pair, weights=clipped, minlength=pairs).astype(np.int64)
    return counts
