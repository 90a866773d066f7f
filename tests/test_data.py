"""One loader for every CSV: aliases and BOMs accepted, bad files refused with a message that names the problem.
(Other formats, recipe columns, splits and leakage: test_your_data.py.)"""

import pandas as pd
import pytest
from helpers import ROOT, SAMPLE_FILES, SHARED_DATA, load_file, preset_spec, sample_texts

from arabic_sft.data.columns import data_spec
from arabic_sft.data.splits import load_training_splits, subsample_rows
from arabic_sft.prompts.builder import build_example
from arabic_sft.recipe import RecipeArguments, read_preset
from arabic_sft.runtime.errors import UserError


def load_split(path, task, **options) -> pd.DataFrame:
    return load_file(path, preset_spec(task), **options).frame


def write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


def test_sample_files_load_with_canonical_columns():
    proverbs = load_split(SAMPLE_FILES["proverbs"], "proverbs")
    medical = load_split(SAMPLE_FILES["medical_qa"], "medical_qa")
    assert list(proverbs.columns) == ["proverb", "explanation"] and len(proverbs) == 12
    assert list(medical.columns) == ["question", "category", "answer"] and len(medical) == 12


@pytest.mark.skipif(not (SHARED_DATA / "yemeni_proverbs").is_dir(), reason="../shared/data is not beside the repo")
def test_real_proverbs_files_with_bom_and_plural_header_load():
    for name, rows in [("Train_data.csv", 333), ("Validation_data.csv", 100), ("Test_data.csv", 100)]:
        path = SHARED_DATA / "yemeni_proverbs" / name
        assert path.read_bytes().startswith(b"\xef\xbb\xbfProverbs,Explanation")
        data = load_split(path, "proverbs")
        assert list(data.columns) == ["proverb", "explanation"] and len(data) == rows


@pytest.mark.skipif(not (SHARED_DATA / "ahqad_sample").is_dir(), reason="../shared/data is not beside the repo")
def test_real_ahqad_sample_loads():
    assert len(load_split(SHARED_DATA / "ahqad_sample" / "test.csv", "medical_qa")) == 500


def test_document_column_names_in_other_case_are_accepted(tmp_path):
    path = write(tmp_path / "doc.csv", "\ufeff PROVERB ,Reference_Explanation\nمثل,شرح\n")
    assert load_split(path, "proverbs").to_dict("records") == [{"proverb": "مثل", "explanation": "شرح"}]


def test_test_file_without_references_loads_when_answers_are_optional(tmp_path):
    path = write(tmp_path / "test.csv", "proverb\nمثل\n")
    assert list(load_split(path, "proverbs", require_answer=False).columns) == ["proverb"]
    with pytest.raises(UserError, match="no column for 'explanation'"):
        load_split(path, "proverbs")


@pytest.mark.parametrize(
    "content, message",
    [("", "file is empty"), ("Proverbs,Explanation\n", "header but no rows"), ('a,b\n"x,y\n', "malformed CSV")],
    ids=["empty", "header-only", "bad-quoting"],
)
def test_unreadable_files_are_refused_with_the_reason(tmp_path, content, message):
    path = write(tmp_path / "bad.csv", content)
    with pytest.raises(UserError, match=message) as error:
        load_split(path, "proverbs")
    assert str(path) in str(error.value)


def test_cp1256_file_names_the_encoding_option(tmp_path):
    path = write(tmp_path / "arabic.csv", "proverb,explanation\nمثل,شرح\n", encoding="cp1256")
    with pytest.raises(UserError, match="csv_encoding") as error:
        load_split(path, "proverbs")
    assert str(path) in str(error.value)
    assert load_split(path, "proverbs", encoding="cp1256")["proverb"].tolist() == ["مثل"]


def test_empty_cells_are_dropped_with_a_count_or_rejected(tmp_path, capsys):
    path = write(tmp_path / "gaps.csv", "proverb,explanation\nمثل,شرح\nمثل آخر,  \n,شرح\n")
    assert len(load_split(path, "proverbs")) == 1
    assert "dropped 2 row(s)" in capsys.readouterr().err
    with pytest.raises(UserError, match="2 row\\(s\\) with an empty cell"):
        load_split(path, "proverbs", empty_cells="error")


def test_cells_stay_text():
    frame = pd.DataFrame({"proverb": ["NA"], "explanation": ["0"]})
    spec = data_spec(RecipeArguments(prompt_template="{proverb}", answer_column="explanation"))
    assert build_example(frame.iloc[0].to_dict(), spec, False) == {
        "prompt": "NA",
        "completion": " 0",
    }


def test_subsample_is_reproducible_and_keeps_order():
    first, second = subsample_rows(100, 0.1, seed=42), subsample_rows(100, 0.1, seed=42)
    assert len(first) == 10 and first == second and first == sorted(first)
    assert first != subsample_rows(100, 0.1, seed=7) and subsample_rows(100, 1.0, seed=7) == list(range(100))


def test_training_splits_are_subsampled(tmp_path):
    preset = read_preset(str(ROOT / "recipes" / "tasks" / "medical_qa.yaml"))
    recipe = RecipeArguments(
        **preset,
        subsample_fraction=0.5,
        train_file=str(SAMPLE_FILES["medical_qa"]),
        validation_file=str(SAMPLE_FILES["medical_qa"]),
    )
    splits, _, _ = load_training_splits(recipe, seed=0)
    assert {name: len(frame) for name, frame in splits.items()} == {"train": 6, "validation": 6}


def test_the_answer_cannot_be_a_placeholder_of_the_prompt():
    recipe = RecipeArguments(prompt_template="Proverb: {proverb} Answer: {explanation}", answer_column="explanation")
    with pytest.raises(UserError, match="answer_column 'explanation' is also a placeholder"):
        data_spec(recipe)


def test_the_one_pass_normalization_is_pyarabic_s_on_every_character_and_real_text():
    from arabic_sft.data.arabic import normalize_arabic, pyarabic_normalization

    assert [code for code in range(0x10000) if normalize_arabic(chr(code)) != pyarabic_normalization(chr(code))] == []
    texts = [text for task in ("proverbs", "medical_qa") for text in sample_texts(task)]
    assert [normalize_arabic(text) for text in texts] == [pyarabic_normalization(text) for text in texts]
    assert normalize_arabic("مَدْرَسَةٌ إلى") == "مدرسه الي"
