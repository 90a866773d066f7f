"""Several sources in one recipe (`datasets:`, arabic_sft.data.mixture): each mixed row is the very example its own
one-source recipe makes, weights draw the rows asked with the recipe's seed and the record says which, the data check
finds pairs within and across sources (and drops the right row when two sources share a file position), and the
shipped mixture recipe trains, evaluates and compares per source."""

import json

import pandas as pd
import pytest
import yaml
from helpers import (
    CPU_TRAINING,
    ROOT,
    SAMPLE_FILES,
    SHARED_DATA,
    assert_one_error_line,
    stages_in_process,
    write_recipe,
)

from arabic_sft.data.mixture import MIXTURE, SOURCE, ranges
from arabic_sft.data.splits import data_files, load_splits, read_as_trained
from arabic_sft.prompts.builder import build_dataset, build_example
from arabic_sft.recipe import RecipeArguments, read_preset


def sources(**medical) -> list[dict]:
    """The project's two samples as two sources, each with its own task preset (columns, prompt)."""
    return [
        {
            "id": "proverbs",
            **read_preset("proverbs"),
            "train_file": str(SAMPLE_FILES["proverbs"]),
            "test_fraction": 0.25,
        },  # fmt: skip
        {"id": "medical", **read_preset("medical_qa"), "train_file": str(SAMPLE_FILES["medical_qa"]), **medical},
    ]


def mixture_recipe(path, **fields):
    """A CPU recipe of the tests' shape (cpu_recipe's) whose data is `datasets` (or what `fields` say)."""
    values = {"model_name_or_path": "m", "output_dir": str(path.parent / "out"), **CPU_TRAINING, **fields}
    return write_recipe(path, **{name: value for name, value in values.items() if value is not None})


def one_source(entry: dict) -> RecipeArguments:
    """The one-source recipe a source stands for: its fields as a recipe's."""
    return RecipeArguments(**{key: value for key, value in entry.items() if key not in ("id", "rows", "fraction")})


def test_each_mixed_row_is_the_example_its_own_one_source_recipe_makes():
    entries = sources(test_file=str(SAMPLE_FILES["medical_qa"]))
    splits, spec, record = load_splits(RecipeArguments(datasets=entries), 42)
    assert spec == MIXTURE and splits["train"].carried == (SOURCE,)
    for entry in entries:
        alone, alone_spec, _ = load_splits(one_source(entry), 42)
        for name in ("train", "test"):
            mixed = splits[name].frame
            rows = mixed[mixed[SOURCE] == entry["id"]]
            assert len(rows) == len(alone[name].frame) > 0
            start = mixed.index.get_loc(rows.index[0])
            positions = splits[name].positions[start : start + len(rows)]
            assert positions == alone[name].positions  # each row's place in its own file
            for conversational in (True, False):
                assert [build_example(row, MIXTURE, conversational) for row in rows.to_dict("records")] == [
                    build_example(row, alone_spec, conversational) for row in alone[name].frame.to_dict("records")
                ]
    # held out per source: the proverbs' test rows, as its one-source recipe holds them out
    assert record["test_rows"] == {"proverbs": load_splits(one_source(entries[0]), 42)[2]["test_rows"]}
    assert data_files(RecipeArguments(datasets=entries)) == [entries[0]["train_file"], *[entries[1]["train_file"]] * 2]


def test_the_mixture_reads_the_keys_the_recipe_checks():
    from arabic_sft.data.mixture import OURS
    from arabic_sft.recipe.schema import SOURCE_KEYS

    assert OURS == SOURCE_KEYS


def test_a_one_source_mixture_trains_on_the_examples_of_the_recipe_it_mixes():
    """Same examples, same tokens, so the same losses: a mixture adds only each row's source."""
    entry = sources()[0]
    mixed, _, _ = read_as_trained(RecipeArguments(datasets=[entry]), 7)
    alone, alone_spec, _ = read_as_trained(one_source(entry), 7)
    for conversational in (True, False):
        dataset = build_dataset(mixed["train"].frame, MIXTURE, conversational)
        assert set(dataset[SOURCE]) == {"proverbs"}
        assert (
            dataset.remove_columns(SOURCE).to_list()
            == build_dataset(alone["train"].frame, alone_spec, conversational).to_list()
        )


def test_weights_draw_the_rows_asked_with_the_seed_and_the_record_says_which():
    def drawn(seed: int, **medical) -> tuple[list[int], dict]:
        splits, _, record = load_splits(RecipeArguments(datasets=sources(**medical)), seed, wanted=("train",))
        train = splits["train"]
        medical_rows = [p for p, s in zip(train.positions, train.frame[SOURCE]) if s == "medical"]
        return medical_rows, record["sources"][1]

    rows, record = drawn(42, rows=5)
    assert len(rows) == 5 and rows == sorted(rows) and drawn(42, rows=5)[0] == rows  # the same seed: the same rows
    assert drawn(43, rows=5)[0] != rows  # fixed by construction: these two seeds draw different rows of 12
    assert record["weight"] == {"rows": 5} and record["train_rows"]["count"] == 5 and record["train_rows"]["of"] == 12
    assert [p for first, last in record["train_rows"]["positions"] for p in range(first, last + 1)] == rows
    half, record = drawn(42, fraction=0.5)
    assert len(half) == 6 and record["weight"] == {"fraction": 0.5}
    everything, record = drawn(42)
    assert everything == list(range(12)) and record["weight"] == "all"
    assert record["train_rows"]["positions"] == [[0, 11]]
    assert ranges([0, 1, 2, 5, 7, 8]) == [[0, 2], [5, 5], [7, 8]]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"train_file": "x.csv"}, "give each source's data in its entry of datasets"),
        ({"datasets": [{"id": "a"}]}, "source 1: name its training data"),
        ({"datasets": [{"train_file": "a.csv", "colums": {}}]}, "unknown key(s) colums"),
        ({"datasets": [{"train_file": "a.csv", "fraction": 0.5, "rows": 3}]}, "fraction or rows, not both"),
        ({"datasets": [{"train_file": "a.csv", "fraction": 1.5}]}, "fraction 1.5 is not in (0, 1]"),
        ({"datasets": [{"train_file": "a/x.csv"}, {"train_file": "b/x.csv"}]}, "the id x names two sources"),
    ],
)
def test_a_wrong_mixture_is_one_line_before_anything_loads(tmp_path, script_in_process, change, message):
    recipe = mixture_recipe(tmp_path / "r.yaml", **{"datasets": sources(), **change})
    assert_one_error_line(script_in_process("data_check.py", "--config", recipe, "--no_general"), message)


def test_more_rows_than_a_source_has_and_a_source_of_chat_turns_are_one_line(tmp_path, script_in_process):
    recipe = mixture_recipe(tmp_path / "r.yaml", datasets=sources(rows=13))
    assert_one_error_line(script_in_process("data_check.py", "--config", recipe, "--no_general"),
                          "datasets: medical: rows 13: its training split has 12 rows")  # fmt: skip
    chat = tmp_path / "chat.jsonl"
    turns = [{"role": "user", "content": "س"}, {"role": "assistant", "content": "ج"}]
    chat.write_text(json.dumps({"messages": turns}))
    recipe = mixture_recipe(tmp_path / "r.yaml", datasets=[sources()[0], {"id": "chat", "train_file": str(chat)}])
    assert_one_error_line(script_in_process("data_check.py", "--config", recipe, "--no_general"),
                          "datasets: chat: its rows are messages data")  # fmt: skip


QUESTION = "ما هي أعراض مرض السكري عند الأطفال الصغار في سن المدرسة"


def test_the_data_check_finds_pairs_within_and_across_sources_and_drops_the_row_of_the_right_source(
    tmp_path, script_in_process
):
    """Two sources whose files share row positions: the public set's row 1 copies the user's test question (the
    contamination that matters most), and each source repeats a row of its own."""
    headache, sleep = "سؤال أول عن الصداع المتكرر", "سؤال عام عن النوم الجيد"
    mine = pd.DataFrame({"Question": [headache, "سؤال ثان عن ألم الظهر", headache], "Category": ["أعصاب"] * 3,
                         "Answer": ["راجع الطبيب", "الراحة", "راجع الطبيب"]})  # fmt: skip
    public = pd.DataFrame({"Question": [sleep, QUESTION, sleep], "Category": ["عام", "أعصاب", "عام"],
                           "Answer": ["نم مبكرا", "راجع الطبيب", "نم مبكرا"]})  # fmt: skip
    test = pd.DataFrame({"Question": ["سؤال لا يتكرر أبدا هنا", QUESTION], "Category": ["أعصاب"] * 2,
                         "Answer": ["ج", "ج"]})  # fmt: skip
    for name, frame in (("mine", mine), ("public", public), ("test", test)):
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
    datasets = [{"id": "mine", "task": "medical_qa", "train_file": "mine.csv", "test_file": "test.csv"},
                {"id": "public", "task": "medical_qa", "train_file": "public.csv"}]  # fmt: skip
    mixture_recipe(tmp_path / "mix.yaml", datasets=datasets, deduplicate="exact")
    made = script_in_process("data_check.py", "--config", "mix.yaml", "--no_general", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    pairs = pd.read_csv(tmp_path / "results/mix/data_check_pairs.csv")
    columns = ["kind", "source_a", "row_a", "split_b", "source_b", "row_b"]
    assert {tuple(row) for row in pairs[columns].itertuples(index=False)} == {
        ("exact", "mine", 0, "train", "mine", 2),
        ("exact", "public", 0, "train", "public", 2),
        ("exact", "public", 1, "test", "mine", 1),
        ("contaminated", "public", 1, "test", "mine", 1),
    }
    check = json.loads((tmp_path / "results/mix/data_check.json").read_text(encoding="utf-8"))["config"]["data_check"]
    assert check["counts_by_source"] == {"exact": {"train:mine-train:mine": 1, "train:public-train:public": 1,
                                                   "train:public-test:mine": 1},
                                         "contaminated": {"train:public-test:mine": 1}}  # fmt: skip
    # position 2 of each source (their later copies) and position 1 of the public set (the test question's copy)
    assert check["dropped"] == {"count": 3, "train_rows": [["mine", 2], ["public", 1], ["public", 2]]}
    assert "train:public-test:mine" in made.stdout


SHIPPED = ROOT / "recipes" / "demo_mixture.yaml"


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_DATA / "ahqad_sample").is_dir(), reason="../shared/data is not beside the repo")
def test_the_shipped_mixture_trains_evaluates_and_compares_per_source(
    tiny_llama, tmp_path, script_in_process, monkeypatch, capsys
):
    """The shipped recipe's sources (the real proverbs and the AHQAD sample from ../shared/data), on the tiny model
    for a few steps: inspect shows both, make data-check counts per source, the run manifest says each source's rows,
    the predictions carry each row's source and make compare gives every metric per source."""
    recipe = yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))
    for entry in recipe["datasets"]:
        for key in ("train_file", "validation_file", "test_file"):
            entry[key] = str(SHARED_DATA / entry[key].split("data/", 1)[1])  # data/yemeni_proverbs is make data's link
    recipe.update(CPU_TRAINING, model_name_or_path=str(tiny_llama), output_dir="results/demo_mixture/model",
                  max_steps=3, eval_strategy="no", save_strategy="no", load_best_model_at_end=False)  # fmt: skip
    (tmp_path / "recipes").mkdir()
    write_recipe(tmp_path / "recipes" / "demo_mixture.yaml", **recipe)

    stage = stages_in_process(monkeypatch, capsys, tmp_path)  # the console program's stages
    shown = script_in_process("sft.py", "--config", "recipes/demo_mixture.yaml", "--inspect", "1", cwd=tmp_path).stdout
    assert "===== example 1 (source proverbs) =====" in shown and "===== example 2 (source medical) =====" in shown
    checked = stage("data-check", "demo_mixture", "--no_general")
    assert "per source (split:source of each row):" in checked and "train:proverbs-validation:proverbs" in checked
    stage("train", "demo_mixture")
    manifest = json.loads((tmp_path / "results/demo_mixture/model/run_manifest.json").read_text(encoding="utf-8"))
    used = {entry["id"]: entry for entry in manifest["config"]["data"]["sources"]}
    assert used["proverbs"]["train_rows"] == {"count": 333, "of": 333, "positions": [[0, 332]]}
    assert used["medical"]["weight"] == {"rows": 200} and used["medical"]["train_rows"]["count"] == 200
    assert manifest["config"]["data"]["examples"]["train"] == 533
    assert len(manifest["data_sha256"]) == 6  # each source's three files
    card = (tmp_path / "results/demo_mixture/model/README.md").read_text(encoding="utf-8")
    assert "| train (medical) |" in card and "| 200 of 400 |" in card and "| test (proverbs) |" in card
    quick = ["--generate_args=--max_new_tokens 4 --batch_size 32", "--score_args=--no_bertscore"]
    stage("eval", "demo_mixture", *quick)
    predictions = pd.read_csv(tmp_path / "results/demo_mixture/predictions_test.csv")
    assert predictions[SOURCE].value_counts().to_dict() == {"medical": 500, "proverbs": 100}
    assert list(predictions.columns) == ["Prompt", SOURCE, "Reference_Answer", "Generated_Answer"]
    stage("baseline", "demo_mixture", *quick)
    compared = stage("compare", "demo_mixture")
    groups = pd.read_csv(next((tmp_path / "results/demo_mixture").glob("*.groups.csv")))
    assert set(groups["group"]) == {"medical", "proverbs"}
    assert set(groups[groups["group"] == "medical"]["group_rows"]) == {500}
    assert "medical" in compared and "proverbs" in compared


def test_trl_s_names_read_a_file_or_a_dataset_directory_and_held_out_rows_are_each_source_s(tmp_path):
    """`path` (TRL's DatasetConfig name): a file the project reads is a train_file, else a dataset (a directory of
    data files here, as `datasets.load_dataset` reads it, its `split`); `test_fraction` holds out each source's own."""
    folder = tmp_path / "medical"
    folder.mkdir()
    sample = pd.read_csv(SAMPLE_FILES["medical_qa"])
    sample.to_csv(folder / "train.csv", index=False)
    sample.iloc[:4].to_csv(folder / "test.csv", index=False)
    datasets = [
        {"id": "proverbs", "task": "proverbs", "path": str(SAMPLE_FILES["proverbs"]), "test_fraction": 0.25},
        {"id": "medical", "task": "medical_qa", "path": str(folder), "split": "train", "test_split": "test"},
    ]
    args = RecipeArguments(**{**read_preset("proverbs"), "datasets": [
        {**read_preset(entry["task"]), **entry} for entry in datasets]})  # fmt: skip
    splits, _, record = load_splits(args, 42)
    counts = splits["test"].frame[SOURCE].value_counts().to_dict()
    assert counts == {"proverbs": 3, "medical": 4} and len(splits["train"].frame) == 9 + 12
    assert record["test_rows"] == {"proverbs": load_splits(one_source(sources()[0]), 42)[2]["test_rows"]}
    assert [entry["read"]["test"] for entry in record["sources"]] == [
        f"{SAMPLE_FILES['proverbs']} (test part)", f"{folder}[test]"]  # fmt: skip


def test_a_few_shot_baseline_shows_each_row_solved_rows_of_its_own_source(tiny_llama, tmp_path, script_in_process):
    from arabic_sft.generation.run import few_shot, shots_of
    from arabic_sft.generation.settings import GenerationSettings
    from arabic_sft.prompts.builder import build_model_prompt

    entries = sources(test_fraction=0.25)
    write_recipe(tmp_path / "r.yaml", model_name_or_path=str(tiny_llama), output_dir=str(tmp_path / "never-trained"),
                 datasets=entries, **CPU_TRAINING)  # fmt: skip
    made = script_in_process("generate.py", "--config", "r.yaml", "--baseline", "--shots", 2, "--max_new_tokens", 4,
                             cwd=tmp_path)  # fmt: skip
    assert made.returncode == 0, made.stderr[-3000:]
    out = tmp_path / "results" / "r" / "baseline-2-shot" / "predictions_test.csv"
    assert pd.read_csv(out)[SOURCE].tolist() == ["proverbs"] * 3 + ["medical"] * 3
    shots = json.loads(out.with_suffix(".manifest.json").read_text(encoding="utf-8"))["config"]["shots"]
    assert set(shots["rows"]) == {"proverbs", "medical"} and not shots["same_for_every_row"]

    splits, spec, _ = load_splits(RecipeArguments(datasets=entries), 42)
    test, train = splits["test"].frame, splits["train"].frame
    examples, record = few_shot(GenerationSettings(shots=2), splits, test, spec, False)
    assert record["rows"] == shots["rows"]  # what generate.py drew, drawn again
    for name, rows in record["rows"].items():
        assert len(rows) == 2 and set(train.iloc[rows][SOURCE]) == {name}
    for row in test.to_dict("records"):  # a plain prompt: the row's own source's two solved rows, then the row
        solved = "".join(shot["prompt"] + " " + shot["answer"] + "\n\n" for shot in examples[row[SOURCE]])
        assert build_model_prompt(row, spec, False, shots_of(examples, row)) == solved + row["prompt"]
