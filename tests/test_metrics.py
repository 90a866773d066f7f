"""Metrics equal hand-computed values on small Arabic cases, and Arabic text is not silently deleted."""

import math

import pytest
from helpers import SAMPLE_FILES, SHARED_DATA

from arabic_sft.data.arabic import normalize_arabic
from arabic_sft.scoring import metrics
from arabic_sft.scoring.tables import metrics_table


REFERENCE = "الصبر مفتاح الفرج"


def test_identical_arabic_texts_score_one():
    bleu = metrics.bleu_scores([REFERENCE], [REFERENCE])
    rouge = metrics.rouge_scores([REFERENCE], [REFERENCE])
    assert bleu["bleu1"] == [1.0] and bleu["bleu2"] == [1.0]
    assert rouge == {"rouge1": [1.0], "rouge2": [1.0], "rougeL": [1.0]}


def test_disjoint_arabic_texts_score_zero():
    bleu = metrics.bleu_scores(["من جد وجد"], [REFERENCE])
    rouge = metrics.rouge_scores(["من جد وجد"], [REFERENCE])
    assert bleu["bleu1"] == [0.0]
    assert rouge == {"rouge1": [0.0], "rouge2": [0.0], "rougeL": [0.0]}


def test_arabic_rouge_counts_overlapping_words_by_hand():
    # 2 of 3 words shared, no shared bigram, longest common subsequence of 2 words.
    rouge = metrics.rouge_scores(["الصبر طريق الفرج"], [REFERENCE])
    assert rouge["rouge1"] == pytest.approx([2 / 3])
    assert rouge["rouge2"] == [0.0]
    assert rouge["rougeL"] == pytest.approx([2 / 3])


def answer_pairs() -> tuple[list[str], list[str]]:
    """(predictions, references) from real answers: each answer against a copy with words dropped, replaced or
    repeated, and against another answer; the shared data's answers too when ../shared is beside the repository."""
    import random

    import pandas as pd

    files = [SAMPLE_FILES["medical_qa"], SAMPLE_FILES["proverbs"], *sorted(SHARED_DATA.glob("*/[Tt]est*.csv"))]
    answers = [str(text) for path in files for text in pd.read_csv(path).iloc[:, -1].dropna()]
    rng = random.Random(0)
    words = " ".join(answers).split()
    edits = (lambda word: [], lambda word: [rng.choice(words)], lambda word: [word, word], lambda word: [word])

    def edited(text: str) -> str:
        return " ".join(new for word in text.split() for new in rng.choices(edits, (1, 1, 1, 5))[0](word))

    references = answers + answers
    return [edited(text) for text in answers] + [rng.choice(answers) for _ in answers], references


def test_rouge_equals_rouge_scores_own_on_real_answers_with_either_tokenizer():
    # ROUGE-L is ours over a bit-parallel LCS; rouge_score's RougeScorer is the reference, compared exactly.
    from rouge_score import rouge_scorer

    predictions, references = answer_pairs()
    latin = ["a b c a b", "the cat sat on the mat the end", "x", ""]
    predictions, references = predictions + latin + latin[::-1], references + latin[::-1] + latin
    assert len(predictions) > 60
    for name, words in (("arabic", metrics.UnicodeWordTokenizer()), ("default", None)):
        scorer = rouge_scorer.RougeScorer(list(metrics.ROUGE_TYPES), tokenizer=words)
        theirs = [scorer.score(reference, prediction) for prediction, reference in zip(predictions, references)]
        ours = metrics.rouge_scores(predictions, references, tokenizer=name)
        for rouge_type in metrics.ROUGE_TYPES:
            assert ours[rouge_type] == [score[rouge_type].fmeasure for score in theirs], (name, rouge_type)
    assert 0 < sum(ours["rougeL"]) < len(predictions)  # the default tokenizer still scores the Latin rows


def test_lcs_length_equals_the_dynamic_programming_table():
    import random

    from rouge_score.rouge_scorer import _lcs_table

    rng = random.Random(0)
    for _ in range(3000):
        vocabulary = rng.choice([2, 5, 50])  # few words: many repeats, many equally long subsequences
        first = [rng.randrange(vocabulary) for _ in range(rng.randrange(90))]
        second = [rng.randrange(vocabulary) for _ in range(rng.randrange(90))]
        expected = _lcs_table(first, second)[-1][-1] if first and second else 0
        assert metrics.lcs_length(first, second) == expected, (first, second)


def test_rouge_default_tokenizer_deletes_arabic_the_seed_artifact():
    # rouge_score's own tokenizer keeps [a-z0-9] only: identical Arabic texts score 0, which is SHEFAA's ROUGE.
    assert metrics.rouge_scores([REFERENCE], [REFERENCE], tokenizer="default")["rouge1"] == [0.0]
    assert metrics.rouge_scores([REFERENCE], [REFERENCE], tokenizer="arabic")["rouge1"] == [1.0]


def test_bleu_by_hand():
    # p1 = 3/4, p2 = 2/3 (no zero counts, so smoothing changes nothing), same length: BLEU-2 = sqrt(p1 * p2).
    bleu = metrics.bleu_scores(["قال الرجل قولا طيبا"], ["قال الرجل قولا حسنا"])
    assert bleu["bleu1"] == pytest.approx([3 / 4])
    assert bleu["bleu2"] == pytest.approx([math.sqrt(3 / 4 * 2 / 3)])
    # Every word right but half the length: brevity penalty exp(1 - 4/2).
    short = metrics.bleu_scores(["قال الرجل"], ["قال الرجل قولا حسنا"])
    assert short["bleu1"] == pytest.approx([math.exp(-1)])


def test_empty_prediction_scores_zero_without_error():
    scores = metrics.text_scores([""], [REFERENCE])
    assert scores["bleu1"] == [0.0] and scores["rouge1"] == [0.0] and scores["empty"] == [True]
    assert scores["arabic_ratio"] == [None]


def test_rouge_words_keep_diacritics_and_drop_punctuation():
    tokens = metrics.UnicodeWordTokenizer().tokenize("مَدْرَسَةٌ جميلة، جداً. Good!")
    assert tokens == ["مَدْرَسَةٌ", "جميلة", "جداً", "good"]


def test_normalize_arabic_forms():
    assert normalize_arabic("أَحْمَدُ ذهب إلى مدرسةٍ العـــربية") == "احمد ذهب الي مدرسه العربيه"


def test_arabic_share_counts_letters_only():
    assert metrics.arabic_share("مرحبا hello") == 0.5
    assert metrics.arabic_share("مَرْحَبًا 123!") == 1.0  # diacritics, digits and punctuation are not letters
    assert metrics.arabic_share("123") is None


def test_summary_has_exactly_the_metric_keys_and_means():
    per_example = metrics.text_scores(["الصبر مفتاح الفرج", "", "patience"], [REFERENCE] * 3)
    summary = metrics.summarize(per_example)
    assert tuple(summary) == metrics.METRIC_KEYS
    assert summary["n"] == 3
    assert summary["rouge1"] == pytest.approx(1 / 3)
    assert summary["empty_rate"] == pytest.approx(1 / 3)
    assert summary["arabic_ratio"] == pytest.approx(0.5)  # mean over the two generations that have letters
    assert summary["bertscore_f1"] is None and summary["semantic_similarity"] is None


def test_bertscore_runs_offline_on_a_tiny_local_bert(tiny_bert):
    scores = metrics.bertscore_scores(
        ["الصبر مفتاح الفرج", "من جد وجد"], [REFERENCE, "العلم نور"], str(tiny_bert), device="cpu"
    )
    assert scores["bertscore_f1"][0] == pytest.approx(1.0, abs=1e-5)  # identical texts: every token matches itself
    assert all(0 < value < 1 for value in scores["bertscore_f1"][1:])
    similarity = metrics.semantic_similarities(
        [REFERENCE, "من جد وجد"], [REFERENCE, "العلم نور"], str(tiny_bert), device="cpu"
    )
    assert similarity[0] == pytest.approx(1.0, abs=1e-5) and -1 <= similarity[1] < 1


def test_metrics_table_puts_shefaa_beside_ours():
    summary = metrics.summarize(metrics.text_scores([REFERENCE], [REFERENCE]))
    table = metrics_table(summary, "demo", baseline="shefaa", split="test")
    assert "| BLEU-1 | 1.0000 | 0.0370 |" in table
    assert "| BERTScore F1 | n/a | 0.6133 |" in table
    assert "SHEFAA (published)" in table and "artifact" in table


def test_sacrebleu_and_chrf_plus_plus_are_sacrebleus_own_corpus_scores():
    import sacrebleu

    predictions = ["ذهب الولد إلى المدرسة صباحا", "القطة على الحصيرة", "الصبر مفتاح الفرج"]
    references = ["ذهب الولد الى المدرسة في الصباح", "جلست القطة على الحصيرة", "الصبر مفتاح الفرج"]
    scores, signatures = metrics.corpus_scores(predictions, references)
    assert scores["sacrebleu"] == sacrebleu.corpus_bleu(predictions, [references]).score
    assert scores["chrf"] == sacrebleu.corpus_chrf(predictions, [references], word_order=2).score
    assert 0 < scores["sacrebleu"] < scores["chrf"] < 100  # chrF credits the shared characters of "الى"/"إلى"
    assert signatures["sacrebleu"].startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:")
    assert signatures["chrf"].startswith("nrefs:1|case:mixed|eff:yes|nc:6|nw:2|space:no|version:")
    perfect, _ = metrics.corpus_scores(references, references)
    assert perfect == pytest.approx({"sacrebleu": 100.0, "chrf": 100.0}, abs=1e-9)  # sacreBLEU sums logs: 100 + 4e-14


def test_corpus_statistics_equal_sacrebleus_own_on_real_answers_and_edge_cases():
    # The n-grams are counted by ngrams.ngram_matches; sacreBLEU's per-example statistics are the reference, exactly.
    from sacrebleu.metrics import BLEU, CHRF

    predictions, references = answer_pairs()
    edges = ["", " ", "a", "ab", "word .", "(hi) there!", "x y z x y z", "a  b\tc", "مَدْرَسَةٌ، جميلة!"]
    predictions, references = predictions + edges + edges[::-1], references + edges[::-1] + edges
    statistics, signatures = metrics.corpus_statistics(predictions, references)
    assert statistics["sacrebleu"] == BLEU()._extract_corpus_statistics(predictions, [references])
    assert statistics["chrf"] == CHRF(word_order=2)._extract_corpus_statistics(predictions, [references])
    assert signatures["sacrebleu"].startswith("nrefs:1|") and signatures["chrf"].startswith("nrefs:1|")
    assert metrics.corpus_statistics([], [])[0] == {"sacrebleu": [], "chrf": []}


def test_bleu_equals_nltks_sentence_bleu_on_real_answers_and_edge_cases():
    # Ours counts the modified precisions with ngrams.ngram_matches; nltk's sentence_bleu is the reference, exactly.
    from nltk.tokenize import NLTKWordTokenizer
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    predictions, references = answer_pairs()
    edges = ["", "a", "a a a a a", "a b", "word .", "(hi) there!", "x y z x y z", "مَدْرَسَةٌ، جميلة!", "ب ب ب"]
    predictions, references = predictions + edges + edges[::-1], references + edges[::-1] + edges
    ours = metrics.bleu_scores(predictions, references)
    tokenizer, smoothing = NLTKWordTokenizer(), SmoothingFunction().method4
    weights = list(metrics.BLEU_WEIGHTS.values())
    for row, (prediction, reference) in enumerate(zip(predictions, references)):
        hypothesis = tokenizer.tokenize(prediction)
        theirs = sentence_bleu([tokenizer.tokenize(reference)], hypothesis, weights=weights,
                               smoothing_function=smoothing) if hypothesis else [0.0] * 3  # fmt: skip
        assert [ours[name][row] for name in metrics.BLEU_WEIGHTS] == theirs, (prediction, reference)
    assert 0 < sum(ours["bleu4"]) < sum(ours["bleu1"]) < len(predictions)


def test_ngram_matches_equal_counters_on_random_texts_over_several_chunks():
    import random
    from collections import Counter

    from arabic_sft.scoring.ngrams import CHUNK_PAIRS, ngram_matches, token_ids

    rng = random.Random(0)
    pairs = 2 * CHUNK_PAIRS + 7
    texts = [[rng.choice("abc") for _ in range(rng.randrange(12))] for _ in range(2 * pairs)]  # repeats, empties
    counts = ngram_matches(*token_ids(texts), 5)
    for pair in range(pairs):
        for n in range(1, 6):
            seen, wanted = (Counter(tuple(text[i : i + n]) for i in range(len(text) - n + 1))
                            for text in (texts[pair], texts[pairs + pair]))  # fmt: skip
            clipped = sum(min(count, wanted[gram]) for gram, count in seen.items())
            assert counts[n - 1, :, pair].tolist() == [seen.total(), wanted.total(), clipped], (pair, n)
