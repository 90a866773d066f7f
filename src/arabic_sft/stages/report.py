"""One self-contained HTML report of a recipe's results: the comparison with intervals, the plots, a breakdown by a
group column, every test row with each run's answer and scores (sortable by improvement, filterable), and the runs'
provenance. It opens from disk with nothing fetched, and can be attached to an email.

    python scripts/report.py --config recipes/demo.yaml            # -> results/demo/report.html
    python scripts/report.py --config recipes/jais_shefaa.yaml --group_column category

Reads what make eval, make baseline (and make judge) wrote in results/<recipe>/, and refreshes the trained model's
card (README.md beside it) with the results make compare wrote.
"""

import argparse
from pathlib import Path

from arabic_sft.named import data_source
from arabic_sft.publishing.card import refresh_cards
from arabic_sft.recipe import load_recipe
from arabic_sft.reporting.browser import headless_chromium
from arabic_sft.reporting.build import build_report
from arabic_sft.runs import RecipeResults
from arabic_sft.runtime.errors import ScriptParser, UserError
from arabic_sft.runtime.locks import exclusive_output
from arabic_sft.runtime.manifest import atomic_path


def make_parser() -> argparse.ArgumentParser:
    parser = ScriptParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="the recipe whose results/<recipe>/ the report shows")
    parser.add_argument("--split", default="test", choices=["test", "validation"])
    parser.add_argument("--group_column", help="break the results down by this column (default: the recipe's)")
    parser.add_argument("--out", help="default: results/<recipe>/report.html")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (as compare.py)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--screenshot",
        action="store_true",
        help="also a PNG of the page as a browser shows it (report.png beside it; needs chromium and chromedriver)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing report")
    return parser


def run(args: argparse.Namespace) -> list[Path]:
    """Write the report as `args` (this stage's command line) say; the files written: the page, the model cards it
    refreshed, and the screenshot when asked."""
    recipe_path = Path(args.config)
    if not recipe_path.is_file():
        raise UserError(f"{recipe_path}: not found")
    loaded = load_recipe(["--config", str(recipe_path)])
    recipe = loaded.args
    data_source(recipe.data_source)  # the model card's: a wrong name fails before any work
    out = Path(args.out or RecipeResults(recipe_path.stem).report)
    if out.exists() and not args.overwrite:
        raise UserError(f"{out}: already exists (pass --overwrite to replace it)")
    with exclusive_output(out):
        group_column = args.group_column or recipe.group_column
        html = build_report(recipe_path, args.split, group_column, args.resamples, args.seed)
        with atomic_path(out) as temporary:
            temporary.write_text(html, encoding="utf-8")
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB); open it in a browser: file://{out.resolve()}")
    written = [out]
    for card in refresh_cards(loaded, args.split):
        print(f"refreshed the model card {card}")
        written.append(card)
    if args.screenshot:
        shot = out.with_suffix(".png")
        screenshot(out, shot)
        print(f"wrote {shot}, the page as headless chromium shows it")
        written.append(shot)
    return written


def main(argv: list[str] | None = None) -> list[Path]:
    return run(make_parser().parse_args(argv))


def screenshot(page: Path, path: Path, width: int = 1400) -> None:
    """The whole page as headless chromium renders it (its height read from the page, which headless chromium does
    not fit the window to by itself)."""
    driver = headless_chromium(width)
    try:
        driver.get(page.resolve().as_uri())
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(width, min(int(height) + 100, 16000))
        image = driver.get_screenshot_as_png()
        with atomic_path(path) as temporary:
            temporary.write_bytes(image)
    finally:
        driver.quit()
