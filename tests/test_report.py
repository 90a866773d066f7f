"""The HTML report in a real browser (Debian's chromium, driven by Selenium): built by the real scripts from a tiny
fine-tune on the medical QA sample (its Category column as the group), opened from a file:// URL."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from helpers import CPU_TRAINING, SAMPLE_FILES, assert_one_error_line, run_in_this_process, run_script, write_recipe


ATTACK = "<script>alert(1)</script> و</td></tr><b>ليس عريضا</b>"
EXACT = [3, 5, 8]  # rows whose fine-tuned answer is made equal to the reference


class ScriptedJudge:
    """A judge whose replies are fixed in advance, one per row (the real judging code around it: cache, parsing,
    judge_X.json and its examples): correctness `scores[i]` for row i, the other criteria 3."""

    def __new__(cls, scores):
        from arabic_sft.judging.backends import Judge

        class Scripted(Judge):
            def identity(self):
                return {"backend": "scripted", "scores": scores}

            def answer_missing(self, conversations, done, store):
                for index in range(len(conversations)):
                    if index not in done:
                        reply = {"correctness": scores[index], "completeness": 3, "conciseness": 3, "language": 3}
                        store(index, json.dumps(reply))

        return Scripted(max_new_tokens=8)


@pytest.fixture(scope="module")
def report(tiny_llama, tmp_path_factory):
    """(folder, the report's path, the fine-tuned and baseline per-example scores): a tiny model trained for a few
    steps, its answers and its untrained base's answers scored, one answer replaced by markup and three by their
    reference (so that the rows improve by different amounts), scored again, then the report."""
    folder = tmp_path_factory.mktemp("report")
    sample = str(SAMPLE_FILES["medical_qa"])
    fields = {"model_name_or_path": str(tiny_llama), "task": "medical_qa", "train_file": sample,
              "validation_file": sample, "test_file": sample, "output_dir": "results/medqa/model",
              "num_train_epochs": 2, "learning_rate": 2.0e-3, "per_device_train_batch_size": 4,
              "eval_strategy": "epoch", "save_strategy": "no", "eval_generation_examples": 4,
              "eval_generation_max_new_tokens": 8, "group_column": "category", **CPU_TRAINING}  # fmt: skip
    recipe = write_recipe(folder / "medqa.yaml", **fields)
    quick = ["--no_bertscore", "--no_semantic_similarity", "--overwrite"]
    for step in (
        ["sft.py", "--config", recipe],
        ["generate.py", "--config", recipe, "--max_new_tokens", "12"],
        ["generate.py", "--config", recipe, "--baseline", "--max_new_tokens", "12"],
        ["score.py", "results/medqa/baseline-zero-shot/predictions_test.csv", *quick],
    ):
        result = run_script(*step, cwd=folder)
        assert result.returncode == 0, result.stderr[-3000:]
    predictions = folder / "results" / "medqa" / "predictions_test.csv"
    frame = pd.read_csv(predictions)
    frame.loc[0, "Generated_Answer"] = ATTACK
    frame.loc[EXACT, "Generated_Answer"] = frame.loc[EXACT, "Reference_Answer"]
    frame.to_csv(predictions, index=False)
    result = run_script("score.py", "--config", recipe, *quick, cwd=folder)
    assert result.returncode == 0, result.stderr[-3000:]
    from arabic_sft.judging.rubric import load_rubric
    from arabic_sft.judging.run import judge_file

    rubric = load_rubric("qa_reference")
    judge_file(predictions, rubric, ScriptedJudge([5 if i in EXACT else 1 for i in range(len(frame))]), "en", False)
    baseline = folder / "results" / "medqa" / "baseline-zero-shot" / "predictions_test.csv"
    judge_file(baseline, rubric, ScriptedJudge([2] * len(frame)), "en", False)
    result = run_script("report.py", "--config", recipe, "--screenshot", cwd=folder)
    assert result.returncode == 0, result.stderr[-3000:]
    tuned = pd.read_csv(folder / "results" / "medqa" / "metrics_test.examples.csv")
    base = pd.read_csv(folder / "results" / "medqa" / "baseline-zero-shot" / "metrics_test.examples.csv")
    return folder, folder / "results" / "medqa" / "report.html", tuned, base


@pytest.fixture(scope="module")
def browser():
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.fail("chromium and chromedriver are missing: make browser installs them (make test does)")
    from arabic_sft.reporting.browser import headless_chromium

    driver = headless_chromium(logs=True)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def opened(report, browser):
    browser.get(report[1].resolve().as_uri())
    return browser


def test_the_report_opens_from_disk_with_no_console_error_and_no_network_request(report, opened):
    errors = [entry for entry in opened.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []
    requested = [
        json.loads(entry["message"])["message"]["params"]["request"]["url"]
        for entry in opened.get_log("performance")
        if json.loads(entry["message"])["message"]["method"] == "Network.requestWillBeSent"
    ]
    assert [url for url in requested if not url.startswith("data:")] == [report[1].resolve().as_uri()]
    html = report[1].read_text(encoding="utf-8")
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "") and "https://" not in html


def test_one_row_per_test_example_and_arabic_shown_right_to_left(report, opened):
    from selenium.webdriver.common.by import By

    rows = opened.find_elements(By.CSS_SELECTOR, "#examples tr.example")
    assert len(rows) == len(report[2]) == 12
    reference = rows[1].find_elements(By.CSS_SELECTOR, "td.text")[0]
    assert opened.execute_script("return getComputedStyle(arguments[0]).direction", reference) == "rtl"
    assert reference.get_attribute("lang") == "ar"
    assert opened.find_element(By.ID, "shown").text == "12 of 12 rows shown"


def test_markup_in_an_answer_is_shown_as_text_and_runs_nothing(opened):
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    cells = [cell for cell in opened.find_elements(By.CSS_SELECTOR, "#examples td.text") if "alert(1)" in cell.text]
    assert len(cells) == 1 and ATTACK in cells[0].text  # the markup as text, whole
    assert cells[0].find_elements(By.TAG_NAME, "script") == [] and cells[0].find_elements(By.TAG_NAME, "b") == []
    with pytest.raises(NoAlertPresentException):
        opened.switch_to.alert  # noqa: B018
    assert len(opened.find_elements(By.CSS_SELECTOR, "#examples tr.example")) == 12  # the table is whole


def test_sorting_by_improvement_puts_the_most_improved_row_first_and_filters_narrow_the_rows(report, opened):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    _, _, tuned, base = report
    gains = (tuned["rougeL"] - base["rougeL"]).to_numpy()
    most = int(np.flatnonzero(gains == gains.max())[0]) + 1  # ties: the first in test order
    Select(opened.find_element(By.ID, "sort")).select_by_value("rougeL")
    first = opened.find_elements(By.CSS_SELECTOR, "#examples tr.example")[0]
    assert int(first.get_attribute("data-number")) == most and gains.max() > 0
    Select(opened.find_element(By.ID, "sort")).select_by_value("-rougeL")
    first = opened.find_elements(By.CSS_SELECTOR, "#examples tr.example")[0]
    assert int(first.get_attribute("data-number")) == int(np.flatnonzero(gains == gains.min())[0]) + 1

    groups = pd.read_csv(SAMPLE_FILES["medical_qa"])["Category"]
    Select(opened.find_element(By.ID, "group")).select_by_value(groups.iloc[0])
    visible = [row for row in opened.find_elements(By.CSS_SELECTOR, "#examples tr.example") if row.is_displayed()]
    assert len(visible) == (groups == groups.iloc[0]).sum()
    Select(opened.find_element(By.ID, "group")).select_by_value("")
    opened.find_element(By.ID, "search").send_keys("alert(1)")
    visible = [row for row in opened.find_elements(By.CSS_SELECTOR, "#examples tr.example") if row.is_displayed()]
    assert [row.get_attribute("data-number") for row in visible] == ["1"]
    opened.find_element(By.ID, "search").clear()


def test_the_judge_scores_are_shown_beside_each_answer_and_rows_sort_by_them(opened):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    assert "Judge: correctness" in opened.find_element(By.ID, "metrics").text
    Select(opened.find_element(By.ID, "sort")).select_by_value("judge_correctness")
    rows = opened.find_elements(By.CSS_SELECTOR, "#examples tr.example")
    assert [int(row.get_attribute("data-number")) for row in rows[:3]] == [i + 1 for i in EXACT]  # +3, ties in order
    assert "Judge: correctness 5.000" in rows[0].text and "Judge: correctness 2.000" in rows[0].text  # tuned, base
    Select(opened.find_element(By.ID, "sort")).select_by_value("-judge_correctness")
    assert opened.find_elements(By.CSS_SELECTOR, "#examples tr.example")[0].get_attribute("data-number") == "1"
    Select(opened.find_element(By.ID, "sort")).select_by_value("")


def test_the_report_shows_the_comparison_the_groups_the_plots_and_its_provenance(report, opened):
    from matplotlib import image
    from selenium.webdriver.common.by import By

    folder, path, _, _ = report
    html = path.read_text(encoding="utf-8")
    assert html.count('src="data:image/png;base64,') == 3  # loss, generation metrics at evaluations, intervals
    assert "ROUGE-L (F1)" in opened.find_element(By.ID, "metrics").text
    sizes = pd.read_csv(SAMPLE_FILES["medical_qa"])["Category"].value_counts()
    groups = [row.find_elements(By.TAG_NAME, "td")[0].text for row in
              opened.find_elements(By.CSS_SELECTOR, "#group-table tbody tr")]  # fmt: skip
    assert groups == sorted(sizes.index, key=lambda name: (-sizes[name], name))  # the largest first, then by name
    assert "(too small)" in opened.find_element(By.ID, "group-table").text
    assert "medical_qa.csv" in html
    digest = json.loads((folder / "results/medqa/model/run_manifest.json").read_text())["data_sha256"]
    assert all(value in html for value in digest.values())
    pixels = image.imread(folder / "results" / "medqa" / "report.png")  # report.py --screenshot: the whole page
    assert len(np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)) > 50  # not blank
    assert pixels.shape[0] > 2000  # the whole page, not the first screen


def test_report_refuses_a_recipe_without_results_in_one_line(tmp_path, monkeypatch, capsys):
    recipe = write_recipe(tmp_path / "nothing.yaml", task="proverbs", output_dir="results/nothing/model")
    result = run_in_this_process(monkeypatch, capsys, "report.py", "--config", recipe, cwd=tmp_path)
    assert_one_error_line(result, "results/nothing/baseline-zero-shot/metrics_test.json: not found")
    assert not (tmp_path / "results").exists()
