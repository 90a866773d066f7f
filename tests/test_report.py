"""The HTML report in a real browser (Debian's chromium, driven by Selenium): built by the real scripts from a tiny
fine-tune on the medical QA sample (its Category column as the group), opened from a file:// URL."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from helpers import (
    ATTACK,
    EXACT,
    ROOT,
    SAMPLE_FILES,
    assert_one_error_line,
    examples_ready,
    run_in_this_process,
    write_recipe,
)


pytestmark = pytest.mark.slow  # make test-fast skips this file


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
    return examples_ready(browser)


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
    examples_ready(opened)
    first = opened.find_elements(By.CSS_SELECTOR, "#examples tr.example")[0]
    assert int(first.get_attribute("data-number")) == most and gains.max() > 0
    Select(opened.find_element(By.ID, "sort")).select_by_value("-rougeL")
    examples_ready(opened)
    first = opened.find_elements(By.CSS_SELECTOR, "#examples tr.example")[0]
    assert int(first.get_attribute("data-number")) == int(np.flatnonzero(gains == gains.min())[0]) + 1

    groups = pd.read_csv(SAMPLE_FILES["medical_qa"])["Category"]
    Select(opened.find_element(By.ID, "group")).select_by_value(groups.iloc[0])
    examples_ready(opened)
    visible = [row for row in opened.find_elements(By.CSS_SELECTOR, "#examples tr.example") if row.is_displayed()]
    assert len(visible) == (groups == groups.iloc[0]).sum()
    Select(opened.find_element(By.ID, "group")).select_by_value("")
    opened.find_element(By.ID, "search").send_keys("alert(1)")
    examples_ready(opened)
    visible = [row for row in opened.find_elements(By.CSS_SELECTOR, "#examples tr.example") if row.is_displayed()]
    assert [row.get_attribute("data-number") for row in visible] == ["1"]
    opened.find_element(By.ID, "search").clear()
    opened.execute_script("document.getElementById('search').dispatchEvent(new Event('input'))")
    examples_ready(opened)


def test_the_judge_scores_are_shown_beside_each_answer_and_rows_sort_by_them(opened):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    assert "Judge: correctness" in opened.find_element(By.ID, "metrics").text
    Select(opened.find_element(By.ID, "sort")).select_by_value("judge_correctness")
    rows = examples_ready(opened) and opened.find_elements(By.CSS_SELECTOR, "#examples tr.example")
    assert [int(row.get_attribute("data-number")) for row in rows[:3]] == [i + 1 for i in EXACT]  # +3, ties in order
    assert "Judge: correctness 5.000" in rows[0].text and "Judge: correctness 2.000" in rows[0].text  # tuned, base
    Select(opened.find_element(By.ID, "sort")).select_by_value("-judge_correctness")
    examples_ready(opened)
    assert opened.find_elements(By.CSS_SELECTOR, "#examples tr.example")[0].get_attribute("data-number") == "1"
    Select(opened.find_element(By.ID, "sort")).select_by_value("")
    examples_ready(opened)


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


def test_the_report_shows_the_leaderboard_as_make_board_printed_it(report, opened):
    from selenium.webdriver.common.by import By

    printed = (report[0] / "results" / "medqa" / "board_test.md").read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(printed) if line.startswith("| # | System"))
    table = printed[start + 2 : printed.index("", start)]
    expected = [[cell.strip() for cell in line.strip("|").split(" | ")] for line in table]
    shown = [[cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
             for row in opened.find_elements(By.CSS_SELECTOR, "#board-table tbody tr")]  # fmt: skip
    assert shown == expected and [row[1] for row in shown] == ["medqa", "medqa/baseline-zero-shot"]
    assert "Judge: correctness" in opened.find_element(By.ID, "board-table").text  # the judge's scores too


def test_report_refuses_a_recipe_without_results_in_one_line(tmp_path, monkeypatch, capsys):
    recipe = write_recipe(tmp_path / "nothing.yaml", task="proverbs", output_dir="results/nothing/model")
    result = run_in_this_process(monkeypatch, capsys, "report.py", "--config", recipe, cwd=tmp_path)
    assert_one_error_line(result, "results/nothing/baseline-zero-shot/metrics_test.json: not found")
    assert not (tmp_path / "results").exists()


def test_answers_without_spaces_stay_in_their_cells_and_the_page_needs_no_horizontal_scroll(report, browser, tmp_path):
    from selenium.webdriver.common.by import By

    folder = tmp_path / "report"
    shutil.copytree(report[0], folder, symlinks=True)
    results = folder / "results" / "medqa"
    predictions = pd.read_csv(results / "predictions_test.csv")
    predictions.loc[1, "Generated_Answer"] = "عسع" * 270  # 810 characters, no space
    predictions.loc[2, "Generated_Answer"] = "St" * 400
    predictions.to_csv(results / "predictions_test.csv", index=False)
    quick = ["--no_bertscore", "--no_semantic_similarity", "--overwrite"]
    for step in (
        ["score.py", "--config", "medqa.yaml", *quick],
        ["report.py", "--config", "medqa.yaml", "--overwrite"],
    ):
        result = subprocess.run([sys.executable, str(ROOT / "scripts" / step[0]), *step[1:]], cwd=folder,
                                capture_output=True, text=True)  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
    examples_ready(browser.get((results / "report.html").resolve().as_uri()) or browser)
    width = browser.execute_script("return document.documentElement.clientWidth")
    assert browser.execute_script("return document.documentElement.scrollWidth") <= width  # at 1400 px
    metrics = browser.find_element(By.ID, "metrics")
    assert metrics.rect["x"] + metrics.rect["width"] <= width
    for row in browser.find_elements(By.CSS_SELECTOR, "#examples tr.example")[:4]:
        cells = row.find_elements(By.TAG_NAME, "td")
        for cell, following in zip(cells, cells[1:]):  # each cell ends where the next begins (left to right)
            assert cell.rect["x"] + cell.rect["width"] <= following.rect["x"] + 1
        for cell in cells:  # and its text stays inside it
            inner = browser.execute_script("return arguments[0].scrollWidth <= arguments[0].clientWidth + 1", cell)
            assert inner, cell.text[:40]


def test_the_group_column_is_an_input_only_when_the_prompt_uses_it():
    from arabic_sft.recipe import RecipeArguments, read_preset
    from arabic_sft.reporting.build import prompt_columns

    medical = RecipeArguments(**read_preset("medical_qa"))
    proverbs = RecipeArguments(**read_preset("proverbs"))
    assert "category" in prompt_columns(medical)  # SHEFAA's prompt shows the category: it stays among the inputs
    assert "region" not in prompt_columns(proverbs) and "proverb" in prompt_columns(proverbs)
    literal = RecipeArguments(prompt_template="{{region}} {proverb}", output_columns={"proverb": "Proverb"})
    assert prompt_columns(literal) == {"proverb"}  # a literal {{region}} is text, not a placeholder
