"""Evaluation at a few thousand rows: scoring spread over processes writes what one process writes, and the report's
examples browser (packed rows drawn a page at a time) reaches every row through paging, sorting, the group filter and
search, in Debian's chromium, with every poisoned answer shown as text and nothing fetched."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import SAMPLE_FILES, examples_ready, run_here, write_recipe


pytestmark = pytest.mark.slow  # make test-fast skips this file

ROWS = 2500  # three parts of score_texts (1,000 rows each) and two of the page (2,000 rows each)
POISON = {
    7: "</script><script>window.poisoned = 1</script> نص",
    400: '"]]}]</script>\u2028\u2029{"x": 1} <img src=x onerror="window.poisoned = 2"> جملة',
    2100: '<b>عريض</b> <iframe src="https://example.org"></iframe> `${1}` \\u003c/script>',
}
GROUPS = ["أمراض القلب", "أمراض الجلد", "طب الأطفال", "small"]


@pytest.fixture(scope="module")
def scaled(tmp_path_factory):
    """A recipe's folder with a fine-tuned run and a baseline over ROWS test rows (short texts from the medical QA
    sample, a category each, three answers poisoned), scored with 2 processes (and the fine-tuned run again with 1),
    and its report."""
    folder = tmp_path_factory.mktemp("scaled")
    sample = pd.read_csv(SAMPLE_FILES["medical_qa"]).astype(str)
    words = " ".join(sample["Answer"]).split()
    rng = np.random.default_rng(0)
    references = [" ".join(rng.choice(words, size=int(rng.integers(4, 12)))) for _ in range(ROWS)]
    tuned = [" ".join(word if rng.random() > 0.3 else str(rng.choice(words)) for word in text.split())
             for text in references]  # fmt: skip
    for row, text in POISON.items():
        tuned[row] = text
    groups = [GROUPS[i % 3] for i in range(ROWS)]
    groups[5] = groups[11] = "small"
    rows = pd.DataFrame({"Question": [f"{sample['Question'].iloc[i % len(sample)]} ({i})" for i in range(ROWS)],
                         "Category": groups, "Reference_Answer": references})  # fmt: skip
    results = folder / "results" / "scaled"
    (results / "baseline-zero-shot").mkdir(parents=True)
    rows.assign(Generated_Answer=tuned).to_csv(results / "predictions_test.csv", index=False)
    baseline = [references[(i + 1) % ROWS] for i in range(ROWS)]
    rows.assign(Generated_Answer=baseline).to_csv(results / "baseline-zero-shot" / "predictions_test.csv", index=False)
    write_recipe(folder / "scaled.yaml", model_name_or_path="inceptionai/Jais-family-256m", task="medical_qa",
                 train_file=str(SAMPLE_FILES["medical_qa"]), output_dir="results/scaled/model",
                 group_column="category")  # fmt: skip
    quick = ["--no_bertscore", "--no_semantic_similarity"]
    for step in (
        ["score.py", "--config", "scaled.yaml", *quick, "--num_workers", "2"],
        ["score.py", "--config", "scaled.yaml", *quick, "--num_workers", "1", "--out", "one/metrics_test.json"],
        ["score.py", "results/scaled/baseline-zero-shot/predictions_test.csv", *quick],
        ["report.py", "--config", "scaled.yaml"],
    ):
        assert run_here(*step, cwd=folder).returncode == 0, step
    return folder, results


def test_scoring_with_two_processes_writes_what_one_process_writes(scaled):
    folder, results = scaled
    two, one = results / "metrics_test.json", folder / "one" / "metrics_test.json"
    for suffix in (".examples.csv", ".md"):
        assert two.with_suffix(suffix).read_bytes() == one.with_suffix(suffix).read_bytes()
    figures = [json.loads(path.read_text(encoding="utf-8")) for path in (two, one)]
    for figure in figures:  # what differs: when each ran (the workers are not a setting: nothing depends on them)
        del figure["settings"]["started"], figure["settings"]["finished"]
    assert figures[0] == figures[1] and figures[0]["n"] == ROWS and figures[0]["sacrebleu"] > 0


def test_the_page_is_one_file_smaller_than_the_csvs_it_shows_with_every_answer_as_packed_data(scaled):
    _, results = scaled
    page = results / "report.html"
    csvs = [results / "predictions_test.csv", results / "baseline-zero-shot" / "predictions_test.csv"]
    assert page.stat().st_size <= sum(path.stat().st_size for path in csvs)
    html = page.read_text(encoding="utf-8")
    assert "window.poisoned" not in html and "<iframe" not in html  # the answers are packed, not in the markup
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "") and "https://" not in html


@pytest.fixture(scope="module")
def page(scaled):
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.fail("chromium and chromedriver are missing: make browser installs them (make test does)")
    from arabic_sft.reporting.browser import headless_chromium

    driver = headless_chromium(logs=True)
    driver.get((scaled[1] / "report.html").resolve().as_uri())
    yield examples_ready(driver)
    driver.quit()


def choose(driver, element: str, value: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element(By.ID, element)).select_by_value(value)
    examples_ready(driver)


def search(driver, text: str) -> None:
    driver.execute_script(
        "var box = document.getElementById('search'); box.value = arguments[0];box.dispatchEvent(new Event('input'));",
        text,
    )
    examples_ready(driver)


def walk(driver) -> list[int]:
    """The numbers of every row the page offers now, page after page (500 a page), through its own buttons."""
    from selenium.webdriver.common.by import By

    choose(driver, "page-size", "500")
    numbers = []
    while True:
        numbers += driver.execute_script(  # one call a page: the drawn rows' numbers, top to bottom
            "return Array.from(document.querySelectorAll('#examples tr.example'), row => Number(row.dataset.number))"
        )
        page = driver.find_element(By.ID, "page")
        if page.get_attribute("value") == page.get_attribute("max"):
            return numbers
        driver.find_element(By.ID, "next").click()
        examples_ready(driver)


def test_every_row_is_reached_by_paging_and_nothing_is_fetched_or_logged(scaled, page):
    from selenium.webdriver.common.by import By

    assert len(page.find_elements(By.CSS_SELECTOR, "#examples tr.example")) == 50  # the first page only
    assert page.find_element(By.ID, "shown").text == f"{ROWS} of {ROWS} rows shown"
    assert walk(page) == list(range(1, ROWS + 1))
    assert [entry for entry in page.get_log("browser") if entry["level"] == "SEVERE"] == []
    requested = [
        json.loads(entry["message"])["message"]["params"]["request"]["url"]
        for entry in page.get_log("performance")
        if json.loads(entry["message"])["message"]["method"] == "Network.requestWillBeSent"
    ]
    assert [url for url in requested if not url.startswith(("data:", "blob:"))] == [
        (scaled[1] / "report.html").resolve().as_uri()
    ]


def test_sorting_by_improvement_or_by_a_score_orders_every_row_as_the_scores_do(scaled, page):
    _, results = scaled
    tuned = pd.read_csv(results / "metrics_test.examples.csv")["rougeL"].to_numpy()
    base = pd.read_csv(results / "baseline-zero-shot" / "metrics_test.examples.csv")["bleu4"].to_numpy()
    base_rouge = pd.read_csv(results / "baseline-zero-shot" / "metrics_test.examples.csv")["rougeL"].to_numpy()
    gains = tuned - base_rouge
    order = sorted(range(ROWS), key=lambda row: (-gains[row], row))  # most improved first, ties in test order
    choose(page, "sort", "rougeL")
    assert walk(page) == [row + 1 for row in order]
    choose(page, "sort", "-@1:bleu4")  # the baseline's lowest BLEU-4 first
    assert walk(page) == [row + 1 for row in sorted(range(ROWS), key=lambda row: (base[row], row))]
    choose(page, "sort", "")


def test_the_group_filter_and_search_reach_exactly_their_rows(page):
    choose(page, "group", GROUPS[1])
    expected = [i + 1 for i in range(ROWS) if i % 3 == 1 and i not in (5, 11)]
    assert walk(page) == expected
    choose(page, "group", "small")
    assert walk(page) == [6, 12]
    choose(page, "group", "")
    search(page, "(1234)")  # a question's text
    assert walk(page) == [1235]
    search(page, "")


def test_poisoned_answers_are_shown_as_text_and_run_nothing(page):
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    for row, text in POISON.items():
        search(page, text[:30].lower())
        cells = [cell for cell in page.find_elements(By.CSS_SELECTOR, "#examples td.text")
                 if cell.find_element(By.CSS_SELECTOR, ".answer").get_attribute("textContent") == text]  # fmt: skip
        assert len(cells) == 1, row
        for tag in ("script", "img", "b", "iframe"):
            assert cells[0].find_elements(By.TAG_NAME, tag) == []
    assert page.execute_script("return window.poisoned === undefined")
    with pytest.raises(NoAlertPresentException):
        page.switch_to.alert  # noqa: B018
    search(page, "")
    assert Path(page.current_url).name == "report.html"
