"""Did it forget? The recipe's base model and its fine-tuned model through lm-evaluation-harness, on the same tasks
with the same few-shot, seed and batch settings, then compared question by question.

    make general RECIPE=allam_proverbs                      # the default Arabic suite (it needs the Hub once)
    make general RECIPE=demo TASKS=arabic_sft_mcq LIMIT=20  # the project's local task, 20 questions
    python scripts/general.py --config recipes/demo.yaml --tasks arabic_sft_mcq aexams --num_fewshot 5
    python scripts/general.py --list_tasks arab             # the task names lm-eval knows that contain "arab"

Writes results/<recipe>/general/{base,tuned}/ (lm-eval's results.json, its per-question samples_TASK.jsonl, a
manifest) and results/<recipe>/general/comparison.{md,csv}: per task and group both accuracies with bootstrap
intervals, the paired difference with its interval and p-value. `make compare` adds the block to the comparison.
A stopped run continues where it stopped (lm-eval's answer cache, under general/.cache/); an existing side is
refused unless --overwrite. On several GPUs `accelerate launch` shares the questions (lm-eval's data parallel).
"""

import argparse
import logging
import os
import sys
from pathlib import Path

from arabic_sft.runtime.errors import ScriptParser, UserError, as_given


def make_parser() -> argparse.ArgumentParser:
    parser = ScriptParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="the recipe: its base model, its output_dir and its general_* fields")
    parser.add_argument(
        "--tasks",
        nargs="+",
        help="lm-eval tasks or groups (default: the recipe's general_tasks, else arabicmmlu "
        "arabic_leaderboard_alghafa aexams arab_culture); commas also separate",
    )
    parser.add_argument("--limit", type=int, help="the first N questions of each task (a quick check)")
    parser.add_argument("--num_fewshot", type=int, help="default: the recipe's general_num_fewshot (0)")
    parser.add_argument("--batch_size", type=int, help="default: the recipe's general_batch_size (8)")
    parser.add_argument("--side", choices=["base", "tuned", "both"], default="both", help="evaluate one side only")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples of the comparison")
    parser.add_argument("--seed", type=int, default=0, help="the bootstrap's seed")
    parser.add_argument("--overwrite", action="store_true", help="evaluate a side again though its folder exists")
    parser.add_argument("--list_tasks", nargs="?", const="", metavar="PATTERN", help="list lm-eval's task names")
    return parser


def quiet_lm_eval() -> None:
    """lm-eval repeats a hint for every task loaded with a custom dataset (ours); the rest of its log stays."""

    class Hint(logging.Filter):
        def filter(self, record):
            return "Custom kwargs can be passed" not in record.getMessage()

    for name in ("lm_eval", "lm-eval", "lm_eval.api.task"):
        logging.getLogger(name).addFilter(Hint())


def run(args: argparse.Namespace) -> list[Path]:
    """Evaluate general ability as `args` (this stage's command line) say; the folders and files written: each side's
    lm-eval results (and the paired comparison once both sides are there). Raises `Stopped` when SIGTERM or Ctrl-C
    stopped it with the answers computed kept."""
    from arabic_sft.general.harness import task_manager

    quiet_lm_eval()
    if args.list_tasks is not None:
        names = [name for name in task_manager().all_tasks if args.list_tasks.lower() in name.lower()]
        print("\n".join(names) or f"no task name contains {args.list_tasks!r}")
        return []
    if not args.config:
        raise UserError("give --config recipes/NAME.yaml (its base model and output_dir are the two sides)")
    from arabic_sft.recipe import load_recipe, one_run
    from arabic_sft.runs import RecipeResults

    recipe = load_recipe(["--config", args.config])
    if args.side != "base":
        one_run(recipe, "general")
    settings = general_settings(args, recipe)
    processes = int(os.environ.get("WORLD_SIZE", "1"))
    if processes > 1 and settings.device == "cpu":
        raise UserError("lm-eval shares questions between processes on GPUs only: run one process on a CPU")
    main_process = os.environ.get("RANK", "0") == "0"
    results = RecipeResults(recipe.name)
    folder = results.general
    sides = sides_to_evaluate(args, recipe, results, settings, main_process)
    evaluate_sides(sides, settings, folder, main_process)
    if not main_process:
        return []
    written = [folder / side.name for side in sides]
    if all((folder / side).is_dir() for side in ("base", "tuned")):
        written += write_comparison(folder, args.resamples, args.seed)
    return written


def evaluate_sides(sides: list, settings, folder: Path, say: bool) -> None:
    """lm-eval on each side, every task checked and its data loaded before any model; stopped by SIGTERM or Ctrl-C
    with the answers computed kept (`Stopped`)."""
    from arabic_sft.general.harness import CACHE, evaluate_side, load_tasks, task_manager
    from arabic_sft.runtime.locks import exclusive_output
    from arabic_sft.runtime.stopping import Stopped, stop_raises, stopped_by

    manager = task_manager()
    try:
        with exclusive_output(folder, enabled=say), stop_raises():
            load_tasks(settings.tasks, manager)  # every task checked and its data loaded before any model
            for side in sides:
                if say:
                    print(f"general ability, {side.name}: {', '.join(settings.tasks)}", file=sys.stderr)
                evaluate_side(side, settings, load_tasks(settings.tasks, manager), manager, folder, True)
    except Stopped as stop:
        if say:
            print(
                f"stopped by {stopped_by(stop.signum)}; the answers computed are kept in {folder / CACHE}: the same "
                "command continues",
                file=sys.stderr,
            )
        raise


def general_settings(args: argparse.Namespace, recipe):
    """What both sides share, from the recipe's general fields and this command line's options, checked."""
    from arabic_sft.general.harness import DEFAULT_TASKS, GeneralSettings

    fields = recipe.args
    names = [name for item in args.tasks or fields.general_tasks or DEFAULT_TASKS for name in item.split(",") if name]
    settings = GeneralSettings(
        tasks=tuple(dict.fromkeys(names)),
        num_fewshot=fields.general_num_fewshot if args.num_fewshot is None else args.num_fewshot,
        batch_size=args.batch_size or fields.general_batch_size,
        chat_template=fields.general_chat_template,
        backend=fields.general_backend,
        seed=recipe.fields.seed,
        limit=args.limit,
    )
    if settings.num_fewshot < 0 or settings.batch_size < 1 or (args.limit is not None and args.limit < 1):
        raise UserError("--num_fewshot must be 0 or more, --batch_size and --limit 1 or more")
    return settings


def sides_to_evaluate(args: argparse.Namespace, recipe, results, settings, say: bool) -> list:
    """The sides asked for that are not already evaluated, by this model as it is now and with these settings."""
    from arabic_sft.general.harness import model_sides

    sides = []
    for side in model_sides(recipe, ("base", "tuned") if args.side == "both" else (args.side,)):
        path, model = results.general_side(side.name), side.model_args.get("peft") or side.model_args["pretrained"]
        stale = results.stale_general(side.name, model) or other_settings(path, settings)
        if path.exists() and not args.overwrite and not stale:
            if say:
                print(f"{path} exists and is {model}'s: kept ({as_given('--overwrite', 'OVERWRITE=1')} evaluates it "
                      "again)")  # fmt: skip
            continue
        if path.exists() and not args.overwrite and say:
            print(f"{path}: {stale}: evaluating it again")
        sides.append(side)
    return sides


def other_settings(side: Path, settings) -> str | None:
    """Which settings (tasks, shots, limit, ...) the side at `side` was evaluated with that differ from `settings`."""
    import json
    from dataclasses import asdict

    from arabic_sft.runs import SIDE_MANIFEST
    from arabic_sft.runtime.manifest import read_json

    recorded = (((read_json(side / SIDE_MANIFEST) or {}).get("config") or {}).get("general")) or {}
    wanted = json.loads(json.dumps(asdict(settings), default=str))
    differ = [name for name, value in wanted.items() if recorded.get(name) != value and name != "batch_size"]
    return f"evaluated with other {', '.join(differ)}" if differ else None


def main(argv: list[str] | None = None) -> list[Path]:
    return run(make_parser().parse_args(argv))


def write_comparison(folder: Path, resamples: int, seed: int) -> list[Path]:
    from arabic_sft.general.paired import general_comparison, general_markdown
    from arabic_sft.runtime.manifest import atomic_path

    table = general_comparison(folder, resamples, seed)
    with atomic_path(folder / "comparison.csv") as temporary:
        table.to_csv(temporary, index=False, encoding="utf-8")
    text = "\n".join(general_markdown(table, resamples, seed)).strip() + "\n"
    with atomic_path(folder / "comparison.md") as temporary:
        temporary.write_text(text, encoding="utf-8")
    print(text)
    print(f"wrote {folder / 'comparison.md'} and {folder / 'comparison.csv'}")
    return [folder / "comparison.md", folder / "comparison.csv"]
