"""Your data from a recipe alone: every format, Arabic column names, any number of inputs, TRL's own formats,
splits by fraction, leakage, truncation, and the seed recipes unchanged."""

import json

import datasets
import pandas as pd
import pytest
from helpers import ROOT, SAMPLES, assert_one_error_line, load_file, run_in_this_process
from transformers import AutoTokenizer

from arabic_sft.data.columns import data_spec, prediction_columns
from arabic_sft.data.splits import held_out_rows, load_splits, read_as_trained
from arabic_sft.prompts.builder import build_dataset, build_example, build_model_prompt, predictions_table
from arabic_sft.prompts.truncation import apply_truncation_policy, count_long_prompts, count_truncated
from arabic_sft.recipe import RecipeArguments, load_recipe
from arabic_sft.runtime.errors import UserError
from arabic_sft.training.data_check import run_check


# Three inputs and an answer, under Arabic column names (one with a byte-order mark and spaces, one in other case).
ROWS = [
    {"السؤال": f"سؤال رقم {i}", "التصنيف": "عام" if i % 2 else "طب", "السياق": f"سياق {i}", "الإجابة": f"جواب {i}"}
    for i in range(20)
]
TEMPLATE = "السياق: {context}\nالتصنيف: {category}\nسؤال: {question}\nالإجابة:"
COLUMNS = {"question": "السؤال", "category": ["التصنيف", "category"], "context": "السياق", "answer": "الإجابة"}


def recipe(**fields) -> RecipeArguments:
    return RecipeArguments(**{"prompt_template": TEMPLATE, "columns": COLUMNS, **fields})


def write_formats(directory) -> dict[str, str]:
    """The same rows as CSV, JSON Lines, a JSON array, Parquet and a save_to_disk directory."""
    frame = pd.DataFrame(ROWS)
    paths = {kind: directory / f"data.{kind}" for kind in ("csv", "jsonl", "json", "parquet")}
    frame.rename(columns={"السؤال": "\ufeff السؤال "}).to_csv(paths["csv"], index=False)
    frame.to_json(paths["jsonl"], orient="records", lines=True, force_ascii=False)
    paths["json"].write_text(json.dumps(ROWS, ensure_ascii=False), encoding="utf-8")
    frame.to_parquet(paths["parquet"])
    datasets.Dataset.from_pandas(frame).save_to_disk(directory / "saved")
    paths["saved"] = directory / "saved"
    return {kind: str(path) for kind, path in paths.items()}


@pytest.fixture(scope="module")
def formats(tmp_path_factory):
    return write_formats(tmp_path_factory.mktemp("formats"))


EXPECTED = [
    {"question": row["السؤال"], "category": row["التصنيف"], "context": row["السياق"], "answer": row["الإجابة"]}
    for row in ROWS
]


@pytest.mark.parametrize("kind", ["csv", "jsonl", "json", "parquet", "saved"])
def test_every_format_reads_the_same_rows_under_arabic_column_names(formats, kind):
    splits, spec, _ = load_splits(recipe(train_file=formats[kind]), seed=0, wanted=("train",))
    assert splits["train"].frame.to_dict("records") == EXPECTED
    assert spec.inputs == ["context", "category", "question"] and spec.answer == "answer"
    prompt = build_example(EXPECTED[3], spec, conversational=False)
    assert prompt == {"prompt": "السياق: سياق 3\nالتصنيف: عام\nسؤال: سؤال رقم 3\nالإجابة:", "completion": " جواب 3"}


def test_dataset_name_reads_a_local_dataset_directory_with_its_splits(tmp_path):
    # datasets.load_dataset on a directory of data files: the split comes from each file's name.
    frame = pd.DataFrame(ROWS)
    frame.iloc[:15].to_json(tmp_path / "train.jsonl", orient="records", lines=True, force_ascii=False)
    frame.iloc[15:].to_json(tmp_path / "test.jsonl", orient="records", lines=True, force_ascii=False)
    splits, _, _ = load_splits(recipe(dataset_name=str(tmp_path), test_split="test"), seed=0)
    assert splits["train"].frame.to_dict("records") == EXPECTED[:15]
    assert splits["test"].frame.to_dict("records") == EXPECTED[15:]
    with pytest.raises(UserError, match=r"no split 'dev' \(found: train, test\)"):
        load_splits(recipe(dataset_name=str(tmp_path), test_split="dev"), seed=0)


def test_dataset_name_reads_a_saved_dataset_dict(tmp_path):
    frame = pd.DataFrame(ROWS)
    datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_pandas(frame.iloc[:12]),
            "validation": datasets.Dataset.from_pandas(frame.iloc[12:]),
        }
    ).save_to_disk(tmp_path / "dd")
    splits, _, _ = load_splits(recipe(dataset_name=str(tmp_path / "dd"), validation_split="validation"), seed=0)
    assert [len(splits[name].frame) for name in ("train", "validation")] == [12, 8]


def test_predictions_keep_the_users_column_names_or_the_recipes(formats):
    split = load_splits(recipe(train_file=formats["csv"]), seed=0, wanted=("train",))[0]["train"]
    spec = data_spec(recipe())
    names = prediction_columns(spec, split.names)
    table = predictions_table(split.frame.head(2).to_dict("records"), spec, names, ["x", "y"])
    assert list(table.columns) == ["السياق", "التصنيف", "السؤال", "Reference_الإجابة", "Generated_الإجابة"]
    spec = data_spec(recipe(output_columns={"question": "Q", "generated": "Model"}))
    assert list(prediction_columns(spec, split.names).values()) == [
        "السياق",
        "التصنيف",
        "Q",
        "Reference_الإجابة",
        "Model",
    ]


SEEDS = json.loads((ROOT / "tests" / "golden" / "seed_prompts.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_seed_recipes_render_byte_identical_prompts_and_the_same_output_columns(name):
    # tests/golden/seed_prompts.json: written by the code before recipes declared their columns (task: proverbs /
    # medical_qa hard-coded in Python); the recipes alone must reproduce it, byte for byte.
    golden = SEEDS[name]
    seed = load_recipe(["--config", str(ROOT / "recipes" / f"{name}.yaml")]).args
    spec = data_spec(seed)
    split = load_file(ROOT / golden["sample"], spec)
    rows = split.frame.to_dict("records")
    assert [build_example(row, spec, False) for row in rows] == golden["plain"]
    assert [build_example(row, spec, True) for row in rows] == golden["chat"]
    table = predictions_table(rows, spec, prediction_columns(spec, split.names), [""] * len(rows))
    assert list(table.columns) == golden["prediction_columns"]


def test_fractions_split_one_file_reproducibly_and_record_the_held_out_rows(formats):
    fields = {"train_file": formats["jsonl"], "validation_fraction": 0.2, "test_fraction": 0.1}
    splits, _, record = load_splits(recipe(**fields), seed=7)
    again, _, record_again = load_splits(recipe(**fields), seed=7)
    assert record == record_again and {n: s.frame.equals(again[n].frame) for n, s in splits.items()} == dict.fromkeys(
        splits, True
    )
    assert [len(splits[name].frame) for name in ("train", "validation", "test")] == [14, 4, 2]
    assert sorted(record["validation_rows"] + record["test_rows"] + held_out_rows(20, 0.2, 0.1, 7)["train"]) == list(
        range(20)
    )
    assert splits["test"].frame.to_dict("records") == [EXPECTED[i] for i in record["test_rows"]]
    assert load_splits(recipe(**fields), seed=8)[2]["test_rows"] != record["test_rows"]
    with pytest.raises(UserError, match="must leave rows to train on"):
        load_splits(recipe(**{**fields, "validation_fraction": 0.9}), seed=7)


def test_test_rows_whose_inputs_are_in_train_are_reported_after_arabic_normalization(tmp_path):
    train = pd.DataFrame(ROWS[:10])
    test = pd.DataFrame(ROWS[10:14])
    # The same inputs as train rows, spelled with diacritics, tatweel and hamza forms: still leaked.
    test.loc[0, ["السؤال", "التصنيف", "السياق"]] = ["سُؤَال رقم 1", "عــام", "سياق 1"]
    test.loc[1, ["السؤال", "التصنيف", "السياق"]] = ["سؤال رقم 2", "طب", "سياق 2"]
    train.loc[2, "السؤال"] = "سؤال رقم 2"
    test.loc[1, "الإجابة"] = "جواب آخر"  # another answer does not hide the leak: the inputs are what leak
    train.loc[3, "السياق"] = "سياق أ"
    test.loc[2, ["السؤال", "التصنيف", "السياق"]] = ["سؤال رقم 3", "عام", "سياق إ"]
    train.to_json(tmp_path / "train.jsonl", orient="records", lines=True, force_ascii=False)
    test.to_csv(tmp_path / "test.csv", index=False)
    fields = recipe(train_file=str(tmp_path / "train.jsonl"), test_file=str(tmp_path / "test.csv"))
    splits, spec, _ = read_as_trained(fields, 0)
    check = run_check(fields, splits, spec, with_general=False)
    assert check.counts() == {"exact": {"train-test": 3}}
    assert "data check: 3 exact train-test pair(s) of rows (compared after Arabic normalization)" in check.summary()


MESSAGES = [
    {
        "messages": [
            {"role": "user", "content": "ما عاصمة اليمن؟"},
            {"role": "assistant", "content": "صنعاء."},
            {"role": "user", "content": "وما عاصمة عمان؟"},
            {"role": "assistant", "content": "مسقط."},
        ]
    },
    {
        "messages": [
            {"role": "system", "content": "أجب بإيجاز."},
            {"role": "user", "content": "كم يوما في الأسبوع؟"},
            {"role": "assistant", "content": "سبعة."},
        ]
    },
]


def test_messages_train_every_assistant_turn_and_nothing_else(tiny_llama, tmp_path, script_in_process):
    data = tmp_path / "chat.jsonl"
    data.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in MESSAGES * 3), encoding="utf-8")
    config = tmp_path / "chat.yaml"
    config.write_text(
        f"model_name_or_path: {tiny_llama}\ntrain_file: {data}\noutput_dir: {tmp_path / 'out'}\n"
        "use_cpu: true\nbf16: false\nreport_to: none\n",
        encoding="utf-8",
    )
    result = script_in_process("sft.py", "--config", config, "--inspect", 2, "--inspect_json", tmp_path / "i.json")
    assert result.returncode == 0, result.stderr[-3000:]
    examples = json.loads((tmp_path / "i.json").read_text(encoding="utf-8"))
    eos = AutoTokenizer.from_pretrained(tiny_llama).eos_token
    # Both assistant turns of the first conversation are trained (with their EOS); user turns and roles are not.
    assert examples[0]["completion"] == "صنعاء." + eos + "مسقط." + eos
    assert examples[1]["completion"] == "سبعة." + eos
    # Generation prompts with the turns before the last answer, which is the reference.
    spec = data_spec(RecipeArguments(), ["messages"])
    assert build_model_prompt(MESSAGES[0], spec, True) == MESSAGES[0]["messages"][:3]


def test_messages_with_a_template_without_assistant_markers_are_refused(tiny_llama, tmp_path, script_in_process):
    model = tmp_path / "model"
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    tokenizer.chat_template = tokenizer.chat_template.replace("{% generation %}", "").replace(
        "{% endgeneration %}", ""
    )
    tokenizer.save_pretrained(model)
    for item in tiny_llama.iterdir():
        if not (model / item.name).exists():
            (model / item.name).symlink_to(item)
    data = tmp_path / "chat.jsonl"
    data.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in MESSAGES), encoding="utf-8")
    config = tmp_path / "chat.yaml"
    config.write_text(
        f"model_name_or_path: {model}\ntrain_file: {data}\noutput_dir: {tmp_path / 'out'}\n"
        "use_cpu: true\nbf16: false\n",
        encoding="utf-8",
    )
    result = script_in_process("sft.py", "--config", config, "--inspect", 1)
    assert_one_error_line(result, "{% generation %}", "prompt/completion")


def test_prompt_completion_data_is_used_as_it_is(tiny_llama):
    rows = [{"prompt": "س: ما عاصمة اليمن؟ ج:", "completion": " صنعاء"}]
    spec = data_spec(RecipeArguments(), ["prompt", "completion"])
    assert build_example(rows[0], spec, False) == rows[0]
    assert build_example(rows[0], spec, True) == {
        "prompt": [{"role": "user", "content": rows[0]["prompt"]}],
        "completion": [{"role": "assistant", "content": " صنعاء"}],
    }


def long_dataset(tokenizer_path, answers: list[str]):
    spec = data_spec(RecipeArguments(prompt_template="سؤال: {question}\nالإجابة:"))
    frame = pd.DataFrame({"question": ["ما هذا؟"] * len(answers), "answer": answers})
    return AutoTokenizer.from_pretrained(tokenizer_path), build_dataset(frame, spec, conversational=False)


def test_truncation_is_counted_and_each_policy_acts(tiny_gpt2):
    short, long = "جواب قصير", " ".join(["جواب طويل جدا"] * 40)
    tokenizer, dataset = long_dataset(tiny_gpt2, [short, long, short, long])
    report = count_truncated(tokenizer, dataset, 48, "train")
    assert report.over == [1, 3] and 0 < report.lost < report.answer_tokens_over < report.answer_tokens
    lines = []
    warned = apply_truncation_policy(tokenizer, {"train": dataset}, 48, "warn", lines.append)
    assert len(warned["train"]) == 4 and lines[0].startswith("truncation: 2 of 4 train examples exceed max_length 48")
    assert f"lose {report.lost / report.answer_tokens_over:.0%} of their answer tokens" in lines[0]
    lines.clear()
    apply_truncation_policy(tokenizer, {"train": dataset.select([0, 2])}, 48, "warn", lines.append)
    assert lines == [f"truncation: 0 of 2 train examples exceed max_length 48 tokens (the longest: "
                     f"{count_truncated(tokenizer, dataset.select([0, 2]), 48, 'train').longest})"]  # fmt: skip
    lines.clear()
    dropped = apply_truncation_policy(tokenizer, {"train": dataset}, 48, "drop", lines.append)
    assert dropped["train"]["answer"] == [short, short] and "dropped 2 of 4 train examples" in lines[0]
    with pytest.raises(UserError, match=r"2 of 4 train examples exceed max_length 48 .*\(examples 2, 4\.\.\.\)"):
        apply_truncation_policy(tokenizer, {"train": dataset}, 48, "error")
    assert (
        apply_truncation_policy(tokenizer, {"train": dataset}, None, "error")["train"] is dataset
    )  # packing / no limit


def test_truncation_shows_in_inspect_and_error_stops_training(tiny_llama, make_recipe, script_in_process, tmp_path):
    config = make_recipe(tiny_llama, "proverbs", max_length=40)
    refused = script_in_process("sft.py", "--config", config, "--truncation", "error")
    assert_one_error_line(refused, "exceed max_length 40")
    assert not (tmp_path / "out").exists()
    result = script_in_process("sft.py", "--config", config, "--inspect", 1)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "truncation: " in result.stdout and "exceed max_length 40" in result.stdout


BAD_SOURCES = {
    # name: (file name, bytes, the words the one error line must hold)
    "jsonl malformed line": (
        "d.jsonl",
        '{"السؤال": "a", "الإجابة": "b"}\n{"السؤال": \n',
        ["malformed JSON", "line 2 is not valid JSON: expecting value column"],
    ),
    "jsonl missing column": (
        "d.jsonl",
        '{"question": "a", "reply": "b"}\n',
        ["no column for 'question'", "found: question, reply", "accepted: السؤال"],
    ),
    "json empty": ("d.json", "", ["file is empty"]),
    "parquet damaged": ("d.parquet", "PAR1 not really", ["not a readable Parquet file"]),
    "unknown type": ("d.xlsx", "x", ["unsupported file type '.xlsx'", ".jsonl"]),
    "jsonl empty cells": ("d.jsonl", '{"السؤال": "a", "الإجابة": ""}\n', ["no rows left after dropping empty cells"]),
    "no rows": ("d.json", "[]", ["has no rows"]),
}


@pytest.mark.parametrize("case", sorted(BAD_SOURCES))
def test_bad_data_in_any_format_is_one_line_naming_the_file(case, tmp_path, monkeypatch, capsys):
    name, content, words = BAD_SOURCES[case]
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    config = tmp_path / "r.yaml"
    config.write_text(
        json.dumps(
            {
                "model_name_or_path": "unused",
                "train_file": str(path),
                "output_dir": str(tmp_path / "out"),
                "prompt_template": "سؤال: {question}",
                "columns": {"question": "السؤال", "answer": "الإجابة"},
                "use_cpu": True,
                "bf16": False,
            },
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )
    result = run_in_this_process(monkeypatch, capsys, "sft.py", "--config", config)
    assert_one_error_line(result, str(path), *words)
    assert not (tmp_path / "out").exists()


def test_a_directory_that_is_not_a_saved_dataset_and_a_missing_split_are_refused(tmp_path):
    (tmp_path / "plain").mkdir()
    with pytest.raises(UserError, match="not one written by datasets' save_to_disk"):
        load_splits(recipe(train_file=str(tmp_path / "plain")), 0)
    with pytest.raises(UserError, match="names no training data"):
        load_splits(recipe(test_fraction=0.1), 0)


def test_the_shipped_jsonl_example_runs_train_generate_score(tiny_llama, tmp_path, script_in_process):
    # README "Your own data in three steps", on a tiny model: recipes/example_own_data.yaml as shipped.
    out = tmp_path / "model"
    trained = script_in_process(
        "sft.py",
        "--config",
        "recipes/example_own_data.yaml",
        "--model_name_or_path",
        tiny_llama,
        "--output_dir",
        out,
        "--num_train_epochs",
        1,
        "--disable_tqdm",
        "true",
        "--report_to",
        "none",
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    manifest = json.loads((out / "run_manifest.json").read_text(encoding="utf-8"))
    held_out = manifest["config"]["data"]["held_out"]
    assert len(held_out["test_rows"]) == 3 and len(held_out["validation_rows"]) == 3
    predictions = tmp_path / "predictions_test.csv"

    def generate(*options):
        return script_in_process(
            "generate.py", "--config", "recipes/example_own_data.yaml", "--checkpoint_dir", out, *options
        )

    generated = generate("--out_path", predictions, "--max_new_tokens", 8)
    assert generated.returncode == 0, generated.stderr[-3000:]
    table = pd.read_csv(predictions, keep_default_na=False)
    assert list(table.columns) == ["السؤال", "Reference_الإجابة", "Generated_الإجابة"]
    rows = [json.loads(line) for line in (SAMPLES / "arabic_qa.jsonl").read_text(encoding="utf-8").splitlines()]
    assert table["السؤال"].tolist() == [rows[i]["السؤال"] for i in held_out["test_rows"]]  # the rows training held out
    scored = script_in_process("score.py", predictions, "--no_bertscore", "--no_semantic_similarity")
    assert scored.returncode == 0, scored.stderr[-2000:]
    assert json.loads(predictions.with_name("metrics_test.json").read_text(encoding="utf-8"))["n"] == 3

    # Held-out rows that differ from the training run's (the file or the seed changed since) are refused.
    changed = generate("--out_path", tmp_path / "again.csv", "--seed", 1, "--limit", 1)
    assert changed.returncode == 0  # --seed is generation's (sampling, --limit), not the split's
    manifest["config"]["data"]["held_out"]["test_rows"] = [0, 1, 2]
    (out / "run_manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    refused = generate("--out_path", tmp_path / "third.csv")
    assert_one_error_line(refused, "differ from those the training run")


def test_prompts_longer_than_the_context_are_counted_at_generation():
    assert count_long_prompts([[1] * 10, [1] * 100], max_new_tokens=20, context=64).startswith(
        "warning: 1 of 2 prompts + max_new_tokens 20 exceed the model's context of 64 tokens"
    )
    assert count_long_prompts([[1] * 10], 20, 64) is None and count_long_prompts([[1] * 10], 20, None) is None


def test_missing_values_of_any_dtype_are_empty_cells_and_numbers_are_text(tmp_path, capsys):
    frame = pd.DataFrame({"question": ["س1", "س2", None], "answer": pd.array([7, None, 9], dtype="Int64")})
    frame.to_parquet(tmp_path / "d.parquet")
    spec = data_spec(RecipeArguments(prompt_template="{question}"))
    rows = load_file(tmp_path / "d.parquet", spec).frame.to_dict("records")
    assert rows == [{"question": "س1", "answer": "7"}]
    assert "dropped 2 row(s) with an empty cell (row 2, row 3...)" in capsys.readouterr().err
