"""Near-duplicates and contamination (arabic_sft.data.cleaning, make data-check, and training's drop), on constructed
rows whose answer is known by hand: Jaccard similarities computed here from the definition, spans of 8 words against
7, the local lm-eval task's questions, and the trainer's rows after deduplicate/decontaminate."""

import json

import pandas as pd
import pytest
from helpers import SHARED_DATA, assert_one_error_line, cpu_recipe, run_here

from arabic_sft.data.arabic import words
from arabic_sft.data.cleaning import CheckSettings, check, dropped_rows
from arabic_sft.data.columns import DataSpec, Split


SPEC = DataSpec("template", "{question}", {"question": ("question",), "answer": ("answer",)}, "answer", {})
QUESTION = "ما هي أعراض مرض السكري عند الأطفال الصغار في سن المدرسة"
SPELLED = [
    "مَا هِيَ أَعْرَاضُ مَرَضِ السُّكَّرِيِّ عِنْدَ الأَطْفَالِ الصِّغَارِ فِي سِنِّ الْمَدْرَسَةِ",  # diacritics
    "ما هي أعـــراض مرض السكرى عند الإطفال الصغار في سن المدرسه",  # tatweel, yaa, hamza alef, taa marbuta forms
    "ما هي أعراض مرض السكري، عند الأطفال الصغار في سن المدرسة؟",  # punctuation is no word
]
ONE_WORD = "ما هي علامات مرض السكري عند الأطفال الصغار في سن المدرسة"  # one word of eleven changed
SHARING = "ما هي أعراض مرض الضغط عند كبار السن"  # another question that shares common words
ANSWER = "راجع الطبيب"


def splits_of(train: list[tuple[str, str]], test: list[str] = ()) -> dict[str, Split]:
    frame = pd.DataFrame(train, columns=["question", "answer"])
    out = {"train": Split(frame, {}, "train.csv", (), tuple(range(len(frame))))}
    if test:
        out["test"] = Split(pd.DataFrame({"question": list(test)}), {}, "test.csv", (), tuple(range(len(test))))
    return out


def shingles(tokens: list[str], size: int) -> set[str]:
    """The definition: the `size`-word shingles of `tokens` (a text shorter than `size` words is one shingle)."""
    if len(tokens) <= size:
        return {" ".join(tokens)} if tokens else set()
    return {" ".join(tokens[i : i + size]) for i in range(len(tokens) - size + 1)}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def by_hand(a: str, b: str, size: int = 1) -> float:
    """The definition: Jaccard similarity of the two texts' normalized word shingles."""
    return len(shingles(words(a), size) & shingles(words(b), size)) / len(
        shingles(words(a), size) | shingles(words(b), size)
    )


def test_spelling_variants_are_exact_one_changed_word_is_near_and_a_different_question_is_neither():
    rows = [(QUESTION, ANSWER), *[(text, ANSWER) for text in SPELLED], (ONE_WORD, ANSWER), (SHARING, ANSWER)]
    pairs = check(splits_of(rows), SPEC, CheckSettings())
    found = {(pair.row_a, pair.row_b): (pair.kind, pair.similarity) for pair in pairs}
    assert found == {
        (0, 1): ("exact", 1.0),
        (0, 2): ("exact", 1.0),
        (0, 3): ("exact", 1.0),
        (0, 4): ("near", round(by_hand(QUESTION + " " + ANSWER, ONE_WORD + " " + ANSWER), 6)),
    }
    assert found[(0, 4)][1] == round(12 / 14, 6)  # 13 words each (11 + the answer's 2), 12 shared
    assert by_hand(QUESTION + " " + ANSWER, SHARING + " " + ANSWER) < 0.8  # shares words, not a copy
    # Bigger shingles are stricter: one changed word moves two of each question's 10 bigrams.
    strict = check(splits_of(rows), SPEC, CheckSettings(shingle_size=2))
    assert [(p.row_a, p.row_b) for p in strict if p.kind == "near"] == []
    assert jaccard(shingles(words(QUESTION), 2), shingles(words(ONE_WORD), 2)) == 8 / 12


def test_dropping_keeps_the_first_copy_and_drops_training_copies_of_test_rows():
    rows = [
        (QUESTION, ANSWER),
        (SPELLED[0], ANSWER),
        (ONE_WORD, ANSWER),
        (SHARING, ANSWER),
        ("سؤال الاختبار هنا", "ج"),
    ]
    pairs = check(splits_of(rows, test=["سؤال الاختبار هنا"]), SPEC, CheckSettings())
    assert dropped_rows(pairs, "none", False, range(5)) == []
    assert dropped_rows(pairs, "exact", False, range(5)) == [1, 4]  # the later exact copy; the test row's copy
    assert dropped_rows(pairs, "near", False, range(5)) == [1, 2, 4]
    # A chain: B is near A (dropped), C is near B only: C stays, being no copy of a row that is kept.
    a = "واحد اثنان ثلاثة أربعة خمسة ستة سبعة ثمانية تسعة عشرة"
    b = a.replace("عشرة", "أحد")
    c = b.replace("تسعة", "إحدى")
    chain = check(splits_of([(a, ""), (b, ""), (c, "")]), DataSpec("template", "{question}", SPEC.accepted,
                  "answer", {}), CheckSettings())  # fmt: skip
    assert {(p.row_a, p.row_b) for p in chain} == {(0, 1), (1, 2)}
    assert dropped_rows(chain, "near", False, range(3)) == [1]


def test_a_training_answer_with_a_test_question_s_8_word_span_is_contaminated_a_7_word_span_is_not():
    test = "كيف أعرف أن طفلي مصاب بالحساسية من الحليب أو من البيض في الصباح"  # 13 words: six 8-word spans
    spans = test.split()
    eight, seven = " ".join(spans[2:10]), " ".join(spans[2:9])
    rows = [("سؤال عن النوم", f"في كتاب قديم {eight}"), ("متى يمشي الرضيع", f"{seven} ثم يكبر ويتعلم الكلام")]
    pairs = check(splits_of(rows, test=[test]), SPEC, CheckSettings())
    assert [(p.kind, p.row_a, p.split_b, p.row_b) for p in pairs] == [("contaminated", 0, "test", 0)]
    assert pairs[0].similarity == round(1 / 6, 6)  # one of the test question's six 8-word spans
    assert dropped_rows(pairs, "none", True, range(2)) == [0] and dropped_rows(pairs, "none", False, range(2)) == []


@pytest.mark.parametrize(
    "field, value, message",
    [("near_duplicate_threshold", 0, "near_duplicate_threshold: 0.0 is not in (0, 1]"),
     ("near_duplicate_threshold", 1.5, "near_duplicate_threshold: 1.5 is not in (0, 1]"),
     ("shingle_size", 0, "shingle_size: 0 words: give 1 or more"),
     ("contamination_ngram", 0, "contamination_ngram: 0 words: give 1 or more")],
)  # fmt: skip
def test_bad_settings_are_one_line(tiny_llama, tmp_path, script_in_process, field, value, message):
    cpu_recipe(tmp_path / "r.yaml", tiny_llama, **{field: value})
    assert_one_error_line(script_in_process("data_check.py", "--config", "r.yaml", "--no_general", cwd=tmp_path),
                          message)  # fmt: skip


def write_data(folder, train: list[tuple[str, str]], test: list[str]):
    pd.DataFrame(train, columns=["Proverbs", "Explanation"]).to_csv(folder / "train.csv", index=False)
    pd.DataFrame({"Proverbs": test, "Explanation": ["ج"] * len(test)}).to_csv(folder / "test.csv", index=False)


@pytest.fixture(scope="module")
def local_question():
    """A question of the local lm-eval task, as lm-eval renders it (its own task loading)."""
    from arabic_sft.general.harness import task_questions

    questions, skipped = task_questions(["arabic_sft_mcq"])
    assert skipped == [] and len(questions["arabic_sft_mcq"]) == 40
    return questions["arabic_sft_mcq"][3]


@pytest.mark.slow  # lm-eval's task index, a training
def test_deduplicate_and_decontaminate_train_on_exactly_the_kept_rows(
    tiny_llama, tmp_path, local_question, capsys, monkeypatch
):
    from arabic_sft.recipe import load_recipe
    from arabic_sft.training.run import load_data

    test = "كيف أعرف أن طفلي مصاب بالحساسية من الحليب أو من البيض في الصباح"
    train = [(QUESTION, ANSWER), (SPELLED[1], ANSWER), (ONE_WORD, ANSWER), (SHARING, ANSWER),
             ("سؤال عن الاختبار", f"قالوا {' '.join(test.split()[:9])}"), ("سؤال عام", local_question),
             ("الصبر مفتاح الفرج", "يضرب للحث على الصبر")]  # fmt: skip
    write_data(tmp_path, train, [test])
    cpu_recipe(tmp_path / "clean.yaml", tiny_llama, train_file="train.csv", test_file="test.csv",
               output_dir="results/clean/model", max_steps=1, deduplicate="near", decontaminate=True,
               general_tasks=["arabic_sft_mcq"])  # fmt: skip
    assert run_here("data_check.py", "--config", "clean.yaml", cwd=tmp_path).returncode == 0
    pairs = pd.read_csv(tmp_path / "results" / "clean" / "data_check_pairs.csv")
    assert [tuple(row) for row in pairs[["kind", "row_a", "split_b", "row_b"]].itertuples(index=False)] == [
        ("exact", 0, "train", 1),
        ("contaminated", 5, "general:arabic_sft_mcq", 3),
        ("near", 0, "train", 2),
        ("contaminated", 4, "test", 0),
    ]  # fmt: skip: most similar first (the local question is copied whole: 1.0)
    summary = json.loads((tmp_path / "results" / "clean" / "data_check.json").read_text(encoding="utf-8"))
    check = summary["config"]["data_check"]
    assert check["dropped"] == {"count": 4, "train_rows": [1, 2, 4, 5]}
    assert check["counts"] == {"exact": {"train-train": 1}, "near": {"train-train": 1},
                               "contaminated": {"train-general:arabic_sft_mcq": 1, "train-test": 1}}  # fmt: skip
    assert set(summary["data_sha256"]) == {"train.csv", "test.csv"}

    monkeypatch.chdir(tmp_path)  # the recipe's paths are relative
    data = load_data(load_recipe(["--config", "clean.yaml"]), print)
    kept = [train[i][0] for i in (0, 3, 6)]
    assert data.frames["train"]["proverb"].tolist() == kept and len(data.datasets["train"]) == 3
    assert "training leaves out 4 of 7 training rows" in capsys.readouterr().out
    assert run_here("sft.py", "--config", "clean.yaml", cwd=tmp_path).returncode == 0
    manifest = json.loads((tmp_path / "results/clean/model/run_manifest.json").read_text(encoding="utf-8"))
    assert manifest["config"]["data"]["cleaning"]["dropped"] == check["dropped"]
    assert manifest["config"]["data"]["cleaning"]["counts"] == check["counts"]
    assert manifest["config"]["data"]["examples"]["train"] == 3
    card = (tmp_path / "results/clean/model/README.md").read_text(encoding="utf-8")
    assert "4 training row(s) were left out (deduplicate: near, decontaminate: true" in card
    # Asking for other cleaning is another run: the finished one is not taken for it.
    again = run_here("sft.py", "--config", "clean.yaml", "--deduplicate", "none", cwd=tmp_path)
    assert again.returncode == 2


@pytest.mark.slow  # lm-eval's task index
def test_a_general_task_that_does_not_exist_is_one_line(tiny_llama, tmp_path, script_in_process, local_question):
    cpu_recipe(tmp_path / "r.yaml", tiny_llama, decontaminate=True, general_tasks=["arabic_nonexistent_task"])
    result = script_in_process("data_check.py", "--config", "r.yaml", cwd=tmp_path)
    assert_one_error_line(result, "unknown lm-eval task 'arabic_nonexistent_task'")


@pytest.mark.skipif(not (SHARED_DATA / "ahqad_sample").is_dir(), reason="../shared/data/ahqad_sample is not here")
def test_the_ahqad_sample_s_check_as_docs_data_md_reports_it(tmp_path, script_in_process, tiny_llama):
    folder = SHARED_DATA / "ahqad_sample"
    cpu_recipe(tmp_path / "ahqad.yaml", tiny_llama, "medical_qa", train_file=str(folder / "train.csv"),
               validation_file=str(folder / "valid.csv"), test_file=str(folder / "test.csv"))  # fmt: skip
    result = script_in_process("data_check.py", "--config", "ahqad.yaml", "--no_general", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "results" / "ahqad" / "data_check.json").read_text(encoding="utf-8"))
    # docs/data.md's figures: cleaned upstream, no copies at 0.8; one training question shares an 8-word span with a
    # test question (train row 108, test row 497: the same patient's opening sentence)
    assert summary["config"]["data_check"]["counts"] == {"contaminated": {"train-test": 1}}
    pairs = pd.read_csv(tmp_path / "results" / "ahqad" / "data_check_pairs.csv")
    assert pairs[["row_a", "row_b"]].values.tolist() == [[108, 497]]


@pytest.mark.slow  # lm-eval's task index
def test_the_data_check_fetches_only_the_tasks_the_recipe_names_and_asks_an_unreachable_hub_once(tiny_llama, tmp_path):
    from helpers import run_script

    cpu_recipe(tmp_path / "none.yaml", tiny_llama, output_dir="results/none/model")  # names no general task
    cpu_recipe(tmp_path / "hub.yaml", tiny_llama, output_dir="results/hub/model", general_tasks=["arabicmmlu"])
    offline = {"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_OFFLINE": "0", "HF_DATASETS_OFFLINE": "0"}  # refused
    for name, skipped in (("none", []), ("hub", ["arabicmmlu"])):
        result = run_script("data_check.py", "--config", f"{name}.yaml", env=offline, cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-2000:]
        record = json.loads((tmp_path / "results" / name / "data_check.json").read_text(encoding="utf-8"))
        check = record["config"]["data_check"]
        assert check["general_tasks"] == ["arabic_sft_mcq"]
        assert [task.split()[0] for task in check["general_tasks_skipped"]] == skipped
        assert "Retry" not in result.stderr and "retry" not in result.stderr, result.stderr[-2000:]


def test_the_engine_s_minhash_signatures_and_lsh_candidates_are_datasketch_s():
    import numpy as np
    from datasketch import MinHash, MinHashLSH

    from arabic_sft.data.cleaning import MINHASH_SEED, NUM_PERM, lsh_bands
    from arabic_sft.data.near import Rows, Shingles, Vocabulary, band_keys, pairs_within, signatures

    rng = np.random.default_rng(0)
    vocabulary, pool = Vocabulary(), [f"كلمة{i}" for i in range(40)]
    texts = [" ".join(rng.choice(pool, size=rng.integers(1, 12))) for _ in range(300)]
    rows = vocabulary.encode(texts)
    for size in (3, 2, 1):  # words, then pairs and triples of words (a shorter row: its words as one shingle)
        shingled = Shingles([rows], size, vocabulary)
        ours = signatures(shingled.sets[0], shingled.hashes, NUM_PERM, MINHASH_SEED)
        theirs = MinHash.bulk([[s.encode() for s in shingles(words(text), size)] for text in texts],
                              num_perm=NUM_PERM, seed=MINHASH_SEED)  # fmt: skip
        assert (ours == np.stack([minhash.hashvalues for minhash in theirs])).all()
    bands = lsh_bands(0.3)  # word sets (size 1) at a low threshold: many shared bands
    lsh = MinHashLSH(num_perm=NUM_PERM, params=bands)
    for number, minhash in enumerate(theirs):
        lsh.insert(number, minhash)
    expected = {(min(a, b), max(a, b)) for a, minhash in enumerate(theirs) for b in lsh.query(minhash) if a != b}
    codes = pairs_within(band_keys(ours, *bands), np.arange(len(texts)))
    assert {(int(code // len(texts)), int(code % len(texts))) for code in codes} == expected
    assert isinstance(rows, Rows) and len(expected) > 100  # enough shared bands to compare


def test_every_pair_at_the_threshold_is_found_as_a_search_of_all_pairs_finds_it():
    """600 rows in clusters of small edits (copies among them), every pair of distinct rows compared by the
    definition."""
    import random

    rng = random.Random(3)
    pool = [f"كلمة{i}" for i in range(300)]
    rows = []
    for _ in range(60):
        base = rng.sample(pool, 12)
        for _ in range(10):
            edited = [word if rng.random() > 0.15 else rng.choice(pool) for word in base]
            rows.append((" ".join(edited), "جواب"))
    tests = [" ".join(rng.sample(pool, 12)) for _ in range(50)] + [rows[7][0], rows[100][0] + " زيادة"]
    for threshold in (0.6, 0.8):
        pairs = check(splits_of(rows, tests), SPEC, CheckSettings(near_duplicate_threshold=threshold))
        texts = [words(question + " " + answer) for question, answer in rows]
        first = {}  # each text's first row: a later copy is paired with it, and near pairs join first rows
        for number, text in enumerate(texts):
            first.setdefault(tuple(text), number)
        expected = {("exact", first[tuple(text)], b) for b, text in enumerate(texts) if first[tuple(text)] != b}
        firsts = sorted(first.values())
        for i, a in enumerate(firsts):
            for b in firsts[i + 1 :]:
                if (similarity := jaccard(set(texts[a]), set(texts[b]))) >= threshold:
                    expected.add(("near", a, b, round(similarity, 6)))
        found = {(p.kind, p.row_a, p.row_b) if p.kind == "exact" else (p.kind, p.row_a, p.row_b, p.similarity)
                 for p in pairs if p.split_b == "train"}  # fmt: skip
        assert found == expected and len(expected) > 50
        across = {(p.row_a, p.row_b) for p in pairs if p.split_b == "test" and p.kind == "near"}
        inputs = [set(words(question)) for question, _ in rows]
        assert across == {(a, b) for b, text in enumerate(tests) for a in range(len(rows))
                          if inputs[a] != set(words(text)) and jaccard(inputs[a], set(words(text))) >= threshold
                          and words(rows[a][0]) != words(text)} and across  # fmt: skip


def test_words_found_by_worker_processes_are_the_words_found_here(monkeypatch):
    import numpy as np

    from arabic_sft.data import near

    cells = [QUESTION, *SPELLED, ONE_WORD, SHARING, ANSWER, "", [{"role": "user", "content": QUESTION}]] * 5
    here = near.Vocabulary().encode(cells)
    monkeypatch.setattr(near, "PARALLEL_CELLS", 8)  # 45 cells: two worker processes, parts of 2 cells
    monkeypatch.setattr(near, "THREADS", 2)
    vocabulary = near.Vocabulary()
    there = vocabulary.encode(cells)
    assert np.array_equal(here.ids, there.ids) and np.array_equal(here.offsets, there.offsets)
    assert [vocabulary.words()[i] for i in there.row(0)] == words(QUESTION)


def test_a_check_of_the_same_rows_and_settings_is_reused_and_any_change_makes_it_again(
    tmp_path, script_in_process, tiny_llama
):
    folder = SHARED_DATA / "ahqad_sample"
    train = pd.read_csv(folder / "train.csv")
    train.to_csv(tmp_path / "train.csv", index=False)
    fields = {"train_file": str(tmp_path / "train.csv"), "test_file": str(folder / "test.csv")}
    cpu_recipe(tmp_path / "ahqad.yaml", tiny_llama, "medical_qa", **fields)
    results = tmp_path / "results" / "ahqad"

    def check() -> tuple[str, bytes]:
        done = script_in_process("data_check.py", "--config", "ahqad.yaml", "--no_general", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        return done.stdout, (results / "data_check_pairs.csv").read_bytes()

    first, pairs = check()
    again, same = check()
    assert "its result reused" not in first and "its result reused" in again and same == pairs
    inspected = script_in_process("sft.py", "--config", "ahqad.yaml", "--inspect", "1", cwd=tmp_path)
    assert inspected.returncode == 0, inspected.stderr  # training's check: make data-check's result, reused
    assert "data check: the same rows, settings and engine as the check of" in inspected.stdout + inspected.stderr
    cpu_recipe(tmp_path / "ahqad.yaml", tiny_llama, "medical_qa", contamination_ngram=7, **fields)  # a setting
    assert "its result reused" not in check()[0]
    train.loc[5] = train.loc[108]  # a row: now a copy of another
    train.to_csv(tmp_path / "train.csv", index=False)
    changed, more = check()
    assert "its result reused" not in changed and "\nexact,train,5,train,108," in more.decode()
