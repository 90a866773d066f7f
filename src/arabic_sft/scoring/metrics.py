"""Scores of generated answers against references, correct for Arabic text.

Every metric comes from its usual library: nltk (BLEU), rouge_score (ROUGE), bert_score (BERTScore) and
sentence-transformers (semantic similarity). What is ours is only what those libraries get wrong for Arabic:
rouge_score's default tokenizer keeps `[a-z0-9]` and so deletes every Arabic letter (SHEFAA's ROUGE of 0.001 is that
artifact, not the model), so ROUGE here splits on what is not a letter, mark or digit in any script.
"""

import math
from collections.abc import Sequence

import numpy as np
import regex
from nltk.tokenize import NLTKWordTokenizer
from nltk.translate.bleu_score import SmoothingFunction
from rouge_score import rouge_scorer
from rouge_score.scoring import fmeasure
from rouge_score.tokenizers import DefaultTokenizer, Tokenizer


METRIC_KEYS = (
    "n", "bleu1", "bleu2", "bleu4", "rouge1", "rouge2", "rougeL", "sacrebleu", "chrf",
    "bertscore_precision", "bertscore_recall", "bertscore_f1", "semantic_similarity", "arabic_ratio", "empty_rate",
)  # fmt: skip

# Corpus-level figures (sacreBLEU's BLEU and chrF++, 0-100); every other figure is a mean over examples in [0, 1].
CORPUS_KEYS = ("sacrebleu", "chrf")
BLEU_WEIGHTS = {"bleu1": (1, 0, 0, 0), "bleu2": (0.5, 0.5, 0, 0), "bleu4": (0.25, 0.25, 0.25, 0.25)}
ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")

# bert_score's own choice for `lang="ar"` (what SHEFAA's `lang='ar'` used): multilingual BERT, layer 9.
BERTSCORE_MODEL = "bert-base-multilingual-cased"
# A multilingual sentence-embedding model that covers Arabic.
SEMANTIC_MODEL = "sentence-transformers/paraphrase-multilingual-mpnet-base-v2"

# Words for ROUGE: runs of letters, combining marks (Arabic diacritics are marks; a bare \w would split words at them)
# and digits, in any script.
WORD = regex.compile(r"[\p{L}\p{M}\p{N}]+")
ARABIC_LETTER = regex.compile(r"(?=\p{L})\p{Script=Arabic}")
LETTER = regex.compile(r"\p{L}")


class UnicodeWordTokenizer(Tokenizer):
    """rouge_score tokenizer that keeps words in every script (lower-cased, punctuation dropped, no stemming)."""

    def tokenize(self, text: str) -> list[str]:
        return WORD.findall(text.lower())


def bleu_scores(predictions: Sequence[str], references: Sequence[str]) -> dict[str, list[float]]:
    """Sentence BLEU-1/2/4 per example: nltk's `sentence_bleu` with smoothing method4 (as SHEFAA), NLTK word tokens.

    nltk's own tokens, brevity penalty, smoothing and formula (`corpus_bleu` of one sentence, all three weights in
    one call); only its modified precisions (clipped n-gram counts) are counted by `ngrams.ngram_matches` for all
    examples at once instead of Counters per sentence: the same figures (tests/test_metrics.py compares them with
    `sentence_bleu` exactly)."""
    from nltk.translate.bleu_score import Fraction, brevity_penalty

    from arabic_sft.scoring.ngrams import ngram_matches, token_ids

    tokenizer = NLTKWordTokenizer()
    smoothing = SmoothingFunction().method4
    hypotheses = [tokenizer.tokenize(text) for text in predictions]
    golds = [tokenizer.tokenize(text) for text in references]
    orders = max(len(weights) for weights in BLEU_WEIGHTS.values())
    counts = ngram_matches(*token_ids(hypotheses + golds), orders).transpose(2, 0, 1).tolist()  # [row][n-1][...]
    scores = {name: [] for name in BLEU_WEIGHTS}
    for hypothesis, gold, row in zip(hypotheses, golds, counts, strict=True):
        values = [0.0] * len(BLEU_WEIGHTS)  # no words, or no word in common (nltk's early return)
        if hypothesis and row[0][2]:
            # nltk's corpus_bleu from here: its modified precisions, brevity penalty, smoothing, weighted log sum
            p_n = [Fraction(matches, max(1, seen), _normalize=False) for seen, _, matches in row]
            p_n = smoothing(p_n, references=[gold], hypothesis=hypothesis, hyp_len=len(hypothesis))
            penalty = brevity_penalty(len(gold), len(hypothesis))
            values = [penalty * math.exp(math.fsum(w * math.log(p) for w, p in zip(weights, p_n) if p > 0))
                      for weights in BLEU_WEIGHTS.values()]  # fmt: skip
        for name, value in zip(BLEU_WEIGHTS, values, strict=True):
            scores[name].append(float(value))
    return scores


def lcs_length(first: Sequence, second: Sequence) -> int:
    """The length of the longest common subsequence of two token sequences: the number rouge_score's `_lcs_table`
    ends with, computed bit-parallel (Allison & Dix 1986, in Hyyrö's 2004 form) with one Python integer as a bit
    row over `first`, so O(len(first) · len(second) / 64) instead of a quadratic table built in Python: after each
    token of `second`, the zero bits of `row` count the LCS of `first` and the tokens so far."""
    positions: dict = {}
    for position, token in enumerate(first):
        positions[token] = positions.get(token, 0) | 1 << position
    full = (1 << len(first)) - 1
    row = full
    for token in second:
        matches = row & positions.get(token, 0)
        if matches:
            row = ((row + matches) | (row - matches)) & full
    return len(first) - row.bit_count()


def rouge_scores(
    predictions: Sequence[str], references: Sequence[str], tokenizer: str = "arabic"
) -> dict[str, list[float]]:
    """ROUGE-1/2/L F1 per example; `tokenizer="default"` is rouge_score's own (Arabic-blind). ROUGE-1/2 are
    rouge_score's; ROUGE-L is rouge_score's formula over `lcs_length` (its LCS table is quadratic in Python: 70% of
    ROUGE's time at 24 words; the same figures, tests/test_metrics.py compares them on every sample row)."""
    if tokenizer not in ("arabic", "default"):
        raise ValueError(f"unknown ROUGE tokenizer {tokenizer!r}")
    words = UnicodeWordTokenizer() if tokenizer == "arabic" else DefaultTokenizer()
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2"], tokenizer=words)
    scores = {name: [] for name in ROUGE_TYPES}
    for prediction, reference in zip(predictions, references, strict=True):
        result = scorer.score(reference, prediction)
        for name in ("rouge1", "rouge2"):
            scores[name].append(float(result[name].fmeasure))
        target, predicted = words.tokenize(reference), words.tokenize(prediction)
        common = lcs_length(target, predicted) if target and predicted else 0  # rouge_score's _score_lcs
        scores["rougeL"].append(float(fmeasure(common / len(predicted), common / len(target)) if common else 0.0))
    return scores


def bertscore_scores(
    predictions: Sequence[str],
    references: Sequence[str],
    model: str = BERTSCORE_MODEL,
    num_layers: int | None = None,
    batch_size: int = 64,
    device: str | None = None,
) -> dict[str, list[float]]:
    """BERTScore precision/recall/F1 per example (bert_score, no idf, no baseline rescaling: raw cosines as SHEFAA).

    `num_layers` defaults to bert_score's choice for a model it knows; a local model needs it given.
    """
    import bert_score

    if num_layers is None and model not in bert_score.utils.model2layers:
        from transformers import AutoConfig

        num_layers = AutoConfig.from_pretrained(
            model
        ).num_hidden_layers  # a model bert_score has no layer for: its last
    # An empty candidate scores 0, as bert_score itself sets it (its own empty-text path fails under transformers 5).
    present = [i for i, text in enumerate(predictions) if text.strip()]
    scores = {
        "bertscore_precision": [0.0] * len(predictions),
        "bertscore_recall": [0.0] * len(predictions),
        "bertscore_f1": [0.0] * len(predictions),
    }
    if present:
        computed = bert_score.score(
            [predictions[i] for i in present],
            [references[i] for i in present],
            model_type=model,
            num_layers=num_layers,
            batch_size=batch_size,
            device=device,
            lang="ar",
            verbose=True,
        )
        for key, values in zip(scores, computed):
            for i, value in zip(present, values.tolist()):
                scores[key][i] = value
    return scores


def semantic_similarities(
    predictions: Sequence[str],
    references: Sequence[str],
    model: str = SEMANTIC_MODEL,
    batch_size: int = 64,
    device: str | None = None,
) -> list[float]:
    """Cosine similarity of sentence-transformers embeddings of each prediction and its reference (0 when the
    prediction is empty, as for BERTScore)."""
    from sentence_transformers import SentenceTransformer

    encoder = SentenceTransformer(model, device=device)
    options = {
        "batch_size": batch_size,
        "convert_to_tensor": True,
        "normalize_embeddings": True,
        "show_progress_bar": True,
    }
    left, right = encoder.encode(list(predictions), **options), encoder.encode(list(references), **options)
    cosines = (left * right).sum(dim=-1).clamp(-1.0, 1.0).tolist()
    return [cosine if text.strip() else 0.0 for cosine, text in zip(cosines, predictions)]


def arabic_share(text: str) -> float | None:
    """The share of the letters in `text` that are Arabic script (None when it has no letters)."""
    letters = len(LETTER.findall(text))
    return len(ARABIC_LETTER.findall(text)) / letters if letters else None


def mean(values: Sequence[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return sum(present) / len(present) if present else None


def corpus_metrics() -> dict:
    """sacreBLEU's corpus BLEU and chrF++ (word_order=2), as `corpus_scores` computes them."""
    from sacrebleu.metrics import BLEU, CHRF

    return {"sacrebleu": BLEU(), "chrf": CHRF(word_order=2)}


def corpus_statistics(predictions: Sequence[str], references: Sequence[str]) -> tuple[dict[str, list], dict[str, str]]:
    """(each example's sufficient statistics for sacreBLEU's corpus BLEU and chrF++: n-gram matches and totals, the
    metrics' signatures). The corpus scores are computed from the statistics' sums, so examples can be counted in
    parts and summed. The statistics are those of sacreBLEU's `_extract_corpus_statistics` (the first half of its
    `corpus_score`; it has no public call for it): its own preprocessing and tokens, the n-grams counted by
    `ngrams.ngram_matches` for all examples at once instead of a Counter each."""
    from arabic_sft.scoring.ngrams import character_ids, ngram_matches, token_ids

    predictions, references = list(predictions), list(references)
    statistics, signatures = {}, {}
    scorers = corpus_metrics()
    for name, metric in scorers.items():
        metric._extract_corpus_statistics(predictions[:1], [references[:1]])  # sets what its signature says
        signatures[name] = str(metric.get_signature())
    if not predictions:
        return {name: [] for name in signatures}, signatures
    bleu, chrf = scorers["sacrebleu"], scorers["chrf"]
    # BLEU: [hypothesis length, reference length, matches of n = 1..4, hypothesis n-grams of n = 1..4]
    words = [bleu._preprocess_segment(text).split() for text in (*predictions, *references)]
    counts = ngram_matches(*token_ids(words), bleu.max_ngram_order)
    lengths = np.array([len(tokens) for tokens in words]).reshape(2, -1)
    statistics["sacrebleu"] = np.concatenate([lengths, counts[:, 2], counts[:, 0]]).T.tolist()
    # chrF++: [hypothesis n-grams (0 when the reference has none of that n), reference n-grams, matches] for
    # character n = 1..6, then word n = 1..2
    texts = [chrf._preprocess_segment(text) for text in (*predictions, *references)]
    counts = np.concatenate([
        ngram_matches(*character_ids(["".join(text.split()) for text in texts]), chrf.char_order),
        ngram_matches(*token_ids([chrf._remove_punctuation(text) for text in texts]), chrf.word_order),
    ])  # fmt: skip
    counts[:, 0] *= counts[:, 1] > 0
    statistics["chrf"] = counts.transpose(2, 0, 1).reshape(len(predictions), -1).tolist()
    return statistics, signatures


def corpus_scores(
    predictions: Sequence[str], references: Sequence[str], counted: tuple[dict, dict] | None = None
) -> tuple[dict[str, float], dict[str, str]]:
    """sacreBLEU's corpus BLEU and chrF++ (on its 0-100 scale, as papers report them) and their signatures, which say
    exactly how they were computed (tokenizer, smoothing, version) so that figures compare across papers.
    `counted`: the examples' `corpus_statistics`, when counted already (in parts: `score_texts`); the figures are
    sacreBLEU's `corpus_score`, whose second half (`_aggregate_and_compute`) this is."""
    statistics, signatures = counted or corpus_statistics(predictions, references)
    scores = {name: metric._aggregate_and_compute(statistics[name]).score for name, metric in corpus_metrics().items()}
    return scores, signatures


def sentence_chrf(predictions: Sequence[str], references: Sequence[str]) -> list[float]:
    """chrF++ of each example (sacreBLEU's sentence score, 0-100): per example, for correlations with judge scores."""
    from sacrebleu.metrics import CHRF

    chrf = CHRF(word_order=2)
    return [chrf.sentence_score(prediction, [reference]).score for prediction, reference in zip(
        predictions, references, strict=True)]  # fmt: skip


def text_scores(
    predictions: Sequence[str], references: Sequence[str], rouge_tokenizer: str = "arabic"
) -> dict[str, list]:
    """Per-example BLEU, ROUGE, Arabic share of letters and emptiness: everything that needs no model."""
    return {
        **bleu_scores(predictions, references),
        **rouge_scores(predictions, references, rouge_tokenizer),
        "arabic_ratio": [arabic_share(text) for text in predictions],
        "empty": [not text.strip() for text in predictions],
    }


def scored_part(part: tuple[list[str], list[str], str]) -> tuple[dict[str, list], tuple[dict, dict]]:
    """One part of `score_texts`: the part's per-example scores and its corpus statistics (a worker's task)."""
    predictions, references, rouge_tokenizer = part
    return text_scores(predictions, references, rouge_tokenizer), corpus_statistics(predictions, references)


# Rows a worker scores at a time: a few seconds of work, so that the parts spread evenly over the workers and the
# progress bar moves; fewer rows than two parts are scored in this process (starting a worker costs ~1 s).
PART_ROWS = 1000


def score_texts(
    predictions: Sequence[str],
    references: Sequence[str],
    rouge_tokenizer: str = "arabic",
    workers: int = 1,
    part_rows: int = PART_ROWS,
) -> tuple[dict[str, list], dict[str, float], dict[str, str]]:
    """(per-example `text_scores`, sacreBLEU's corpus BLEU and chrF++, their signatures), the rows scored in parts
    of `part_rows` spread over `workers` processes. Every per-example score is a function of its row alone and the
    corpus scores are computed from the sum of the rows' statistics, so the figures are those of one process, by
    construction. Hand-made for want of a library call: neither nltk, rouge_score nor sacreBLEU spreads over cores."""
    from tqdm.auto import tqdm

    predictions, references = list(predictions), list(references)
    parts = [(predictions[start : start + part_rows], references[start : start + part_rows], rouge_tokenizer)
             for start in range(0, len(predictions), part_rows)]  # fmt: skip
    workers = max(1, min(workers, len(parts)))
    bar = tqdm(total=len(predictions), desc="scoring", unit="rows", disable=len(parts) < 2)
    if workers == 1:
        done = map(scored_part, parts)
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))  # no torch forked
        done = pool.map(scored_part, parts)  # in order
    per_example: dict[str, list] = {}
    statistics: dict[str, list] = {}
    signatures: dict[str, str] = {}  # every part's are the same
    try:
        for (part_scores, (part_statistics, part_signatures)), part in zip(done, parts):
            signatures = part_signatures
            for key, values in part_scores.items():
                per_example.setdefault(key, []).extend(values)
            for key, values in part_statistics.items():
                statistics.setdefault(key, []).extend(values)
            bar.update(len(part[0]))
    finally:
        bar.close()
        if workers > 1:
            pool.shutdown(cancel_futures=True)
    if not parts:
        per_example = text_scores([], [], rouge_tokenizer)
    corpus, signatures = corpus_scores(predictions, references, (statistics, signatures) if parts else None)
    return per_example, corpus, signatures


def summarize(per_example: dict[str, list]) -> dict[str, float | int | None]:
    """The metrics JSON's figures: each metric's mean over examples (None when not computed).

    arabic_ratio is averaged over the generations that have letters; empty_rate is the share of empty generations.
    """
    n = len(per_example["empty"])
    summary = {"n": n}
    for key in METRIC_KEYS[1:]:
        if key in CORPUS_KEYS:  # not means over examples: computed by corpus_scores
            summary[key] = None
        elif key == "empty_rate":
            summary[key] = sum(per_example["empty"]) / n if n else None
        else:
            summary[key] = mean(per_example[key]) if key in per_example else None
    return summary
