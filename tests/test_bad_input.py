"""The bad-input catalogue: each case stops the script with exit status 2 and one `error:` line naming the file,
column or key, before any model is loaded, and writes nothing."""

import pytest
from helpers import SAMPLE_FILES, assert_one_error_line, run_in_this_process

from arabic_sft.data.splits import read_as_trained
from arabic_sft.recipe import RecipeArguments, read_preset
from arabic_sft.training.data_check import run_check


BAD_TRAIN_FILES = {
    "empty file": ("", "file is empty"),
    "header only": ("Proverbs,Explanation\n", "header but no rows"),
    "missing column": ("Proverbs,Meaning\nمثل,معنى\n", "no column for 'explanation' (found: Proverbs, Meaning"),
    "malformed quoting": ('Proverbs,Explanation\n"مثل,شرح\n', "malformed CSV"),
    "cp1256 bytes": ("Proverbs,Explanation\nمثل,شرح\n".encode("cp1256"), "csv_encoding"),
}


@pytest.mark.parametrize("case", BAD_TRAIN_FILES)
def test_bad_training_csv(case, make_recipe, tiny_llama, tmp_path, monkeypatch, capsys):
    content, message = BAD_TRAIN_FILES[case]
    bad = tmp_path / "train.csv"
    bad.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    result = run_in_this_process(
        monkeypatch, capsys, "sft.py", "--config", make_recipe(tiny_llama, train_file=str(bad))
    )
    assert_one_error_line(result, str(bad), message)
    assert not (tmp_path / "out").exists()


def test_empty_cells_rejected_when_the_recipe_says_so(make_recipe, tiny_llama, tmp_path, monkeypatch, capsys):
    gaps = tmp_path / "train.csv"
    gaps.write_text("Proverbs,Explanation\nمثل,شرح\nمثل آخر,   \n", encoding="utf-8")
    recipe = make_recipe(tiny_llama, train_file=str(gaps), empty_cells="error")
    result = run_in_this_process(monkeypatch, capsys, "sft.py", "--config", recipe)
    assert_one_error_line(result, str(gaps), "1 row(s) with an empty cell", "line 3")


def test_wrong_type_in_a_recipe_field(make_recipe, tiny_llama, monkeypatch, capsys):
    recipe = make_recipe(tiny_llama, num_train_epochs="three")
    result = run_in_this_process(monkeypatch, capsys, "sft.py", "--config", recipe)
    assert_one_error_line(result, str(recipe), "--num_train_epochs", "'three'")


def test_wrong_choice_in_a_recipe_field(make_recipe, tiny_llama, monkeypatch, capsys):
    recipe = make_recipe(tiny_llama, chat_format="markdown")
    result = run_in_this_process(monkeypatch, capsys, "sft.py", "--config", recipe)
    assert_one_error_line(result, str(recipe), "chat_format", "'markdown'", "auto, chat, plain")


def test_padding_free_with_a_remote_code_model(make_recipe, tiny_llama, monkeypatch, capsys):
    # Jais builds its own attention mask: the sequences of a padding-free row would see each other.
    result = run_in_this_process(
        monkeypatch,
        capsys,
        "sft.py",
        "--config",
        make_recipe(tiny_llama),
        "--padding_free",
        "true",
        "--trust_remote_code",
        "true",
    )
    assert_one_error_line(result, "padding_free", "remote-code")


def test_limit_larger_than_the_test_file(tiny_llama, tmp_path, monkeypatch, capsys):
    out = tmp_path / "pred.csv"
    result = run_in_this_process(
        monkeypatch,
        capsys,
        "generate.py",
        "--checkpoint_dir",
        tiny_llama,
        "--test_path",
        SAMPLE_FILES["proverbs"],
        "--out_path",
        out,
        "--limit",
        500,
        "--task",
        "proverbs",
    )
    assert_one_error_line(result, "--limit 500", str(SAMPLE_FILES["proverbs"]), "12 rows")
    assert not out.exists()


def test_generation_needs_a_model(tmp_path, monkeypatch, capsys):
    result = run_in_this_process(
        monkeypatch, capsys, "generate.py", "--test_path", SAMPLE_FILES["proverbs"], "--out_path", tmp_path / "p.csv"
    )
    assert_one_error_line(result, "--checkpoint_dir", "--base_id")


def test_missing_adapter_directory(tiny_llama, tmp_path, monkeypatch, capsys):
    missing = tmp_path / "no-adapter"
    result = run_in_this_process(
        monkeypatch,
        capsys,
        "generate.py",
        "--base_id",
        tiny_llama,
        "--adapter_dir",
        missing,
        "--test_path",
        SAMPLE_FILES["proverbs"],
        "--out_path",
        tmp_path / "p.csv",
        "--task",
        "proverbs",
    )
    assert_one_error_line(result, str(missing), "not found")


def test_validation_rows_repeated_from_train_are_reported_once_by_the_data_check(tmp_path):
    validation = tmp_path / "valid.csv"
    validation.write_text(
        "Proverbs,Explanation\nالصبر مفتاح الفرج,يقال للحث على الصبر عند الشدة، لأن الفرج يأتي بعد "
        "الصبر.\nمثل جديد,شرح جديد\n",
        encoding="utf-8",
    )
    recipe = RecipeArguments(
        task="proverbs",
        **read_preset("proverbs"),
        train_file=str(SAMPLE_FILES["proverbs"]),
        validation_file=str(validation),
    )
    splits, spec, _ = read_as_trained(recipe, seed=0)
    summary = run_check(recipe, splits, spec, with_general=False).summary()
    assert summary.startswith("data check: ") and "1 exact train-validation pair" in summary


def test_wrong_choice_in_a_recipe_stops_generation_too(tmp_path, monkeypatch, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("task: poetry\noutput_dir: results/x\ntest_file: t.csv\n", encoding="utf-8")
    result = run_in_this_process(monkeypatch, capsys, "generate.py", "--config", recipe)
    assert_one_error_line(result, str(recipe), "task", "'poetry'")
