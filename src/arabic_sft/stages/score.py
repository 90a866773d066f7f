"""Score generated answers against their references, correctly for Arabic.

    # a predictions CSV from generate.py (columns found by name) -> metrics_test.json, .md and .examples.csv beside it
    python scripts/score.py results/demo/predictions_test.csv
    # a recipe's predictions for a split, with the paper's figures it names beside ours (what `make eval` runs)
    python scripts/score.py --config recipes/jais_shefaa.yaml --split test
    # two text files with one example per line (SHEFAA's layout)
    python scripts/score.py --predictions preds.txt --references refs.txt --out results/shefaa/metrics.json

Metrics, each a mean over examples in [0, 1]: BLEU-1/2/4 (nltk sentence_bleu, smoothing method4, NLTK word tokens),
ROUGE-1/2/L F1 (rouge_score with a tokenizer that keeps Arabic letters), BERTScore P/R/F1 (bert_score), semantic
similarity (cosine of sentence-transformers embeddings), arabic_ratio (share of the generated letters that are
Arabic script) and empty_rate. A model-based metric whose model cannot be loaded (offline) is recorded as null.
"""

import argparse
import os
import sys
from pathlib import Path

import pandas as pd

from arabic_sft.data.arabic import normalize_arabic
from arabic_sft.named import names
from arabic_sft.recipe import load_recipe, one_run
from arabic_sft.runs import RecipeResults, beside, examples_of, split_of
from arabic_sft.runtime.errors import ScriptParser, UserError
from arabic_sft.runtime.hub import hub_is_reachable, is_local
from arabic_sft.runtime.locks import exclusive_output
from arabic_sft.runtime.manifest import atomic_path, build_manifest, now, write_json_atomic
from arabic_sft.scoring import metrics
from arabic_sft.scoring.predictions import load_predictions, load_text_pairs
from arabic_sft.scoring.tables import metrics_table


def make_parser() -> argparse.ArgumentParser:
    parser = ScriptParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_argument_group("input (one of)")
    source.add_argument("predictions_csv", nargs="?", help="predictions CSV with reference and generated columns")
    source.add_argument("--config", help="recipe: score results/<recipe>/predictions_<split>.csv")
    source.add_argument("--predictions", help="text file, one generated answer per line (with --references)")
    parser.add_argument(
        "--split",
        choices=["test", "validation"],
        help="with --config, and for --baseline (default: from predictions_<split>.csv, else test)",
    )
    parser.add_argument("--references", help="text file, one reference answer per line")
    parser.add_argument(
        "--reference_column", help="default: found by name (Reference_Explanation, Reference_Answer, ...)"
    )
    parser.add_argument(
        "--prediction_column", help="default: found by name (Generated_Explanation, Generated_Answer, ...)"
    )
    parser.add_argument(
        "--out", help="metrics JSON (default: beside the predictions, predictions_X.csv -> metrics_X.json)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing metrics files")
    parser.add_argument(
        "--baseline", choices=names("paper"), help="a paper's results to show beside ours (data/paper_results/)"
    )
    parser.add_argument(
        "--rouge_tokenizer",
        choices=["arabic", "default"],
        default="arabic",
        help="'default' is rouge_score's own, which deletes Arabic letters (to reproduce old numbers)",
    )
    parser.add_argument(
        "--normalize",
        action="store_true",
        help="normalize Arabic (diacritics, tatweel, alef/yaa/taa marbuta forms) before scoring",
    )
    parser.add_argument(
        "--bertscore_model", help=f"model id or local path (default: the recipe's, else {metrics.BERTSCORE_MODEL})"
    )
    parser.add_argument("--bertscore_layers", type=int, help="layer to use (default: bert_score's for the model)")
    parser.add_argument("--no_bertscore", action="store_true", help="skip BERTScore")
    parser.add_argument("--require_bertscore", action="store_true", help="fail instead of recording null")
    parser.add_argument(
        "--semantic_model",
        help=f"sentence-transformers id or path (default: the recipe's, else {metrics.SEMANTIC_MODEL})",
    )
    parser.add_argument("--no_semantic_similarity", action="store_true", help="skip semantic similarity")
    parser.add_argument("--require_semantic_similarity", action="store_true", help="fail instead of recording null")
    parser.add_argument(
        "--num_workers",
        type=int,
        default=len(os.sched_getaffinity(0)),
        help="processes for the per-example metrics (default: this machine's cores; the figures are the same for "
        "any number, by construction)",
    )
    parser.add_argument("--batch_size", type=int, default=64, help="batch size of the embedding models")
    parser.add_argument("--device", help="for the embedding models (default: cuda when available, else cpu)")
    return parser


def resolve_inputs(args) -> tuple[list[str], list[str], dict, dict]:
    """(predictions, references, settings that name the input, the options the input fills in: out, baseline, split,
    the recipe's metric models) from whichever input was given; `args` is left as it is."""
    given = [name for name in ("predictions_csv", "config", "predictions") if getattr(args, name)]
    if len(given) != 1:
        raise UserError(
            "give one input: a predictions CSV, --config RECIPE, or --predictions P.txt --references R.txt"
        )
    if args.predictions:
        if not args.references:
            raise UserError("--predictions needs --references")
        if not args.out:
            raise UserError("--out is required with --predictions")
        predictions, references = load_text_pairs(args.predictions, args.references)
        return predictions, references, {"predictions": args.predictions, "references": args.references}, {}
    baseline, filled = args.baseline, {}
    path = args.predictions_csv
    if args.config:
        loaded = load_recipe(["--config", args.config])
        one_run(loaded, "eval")
        recipe = loaded.args
        baseline = baseline or recipe.paper_baseline
        filled["bertscore_model"] = args.bertscore_model or recipe.bertscore_model
        filled["semantic_model"] = args.semantic_model or recipe.semantic_model
        path = str(RecipeResults(Path(args.config).stem).tuned.predictions(args.split or "test"))
        if not Path(path).is_file():
            raise UserError(f"{path}: not found; generate it first (make eval, or scripts/generate.py --config)")
    predictions, references, columns = load_predictions(path, args.reference_column, args.prediction_column)
    filled.update(out=args.out or str(beside(path, "metrics")), baseline=baseline, split=args.split or split_of(path))
    return predictions, references, {"predictions_csv": path, "columns": columns}, filled


def optional_metric(label: str, model: str, required: bool, compute):
    """A model-based metric's scores, or None (with one line saying why) when its model cannot be loaded."""
    hub = is_local(model) or hub_is_reachable()  # asked once; offline, a model not cached fails at once, no retries
    try:
        return compute()
    except OSError as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        reason = reason if hub else "not in the local cache, and the Hub cannot be reached"
    if required:
        raise UserError(f"{label}: cannot load {model} ({reason})")
    print(f"warning: {label} not computed, recorded null: cannot load {model} ({reason})", file=sys.stderr)
    return None


# Fewer rows than this: a 95% interval of a mean over them is wider than most differences a fine-tuning makes.
FEW_ROWS = 30
# More empty answers than this share: the scores measure mostly silence.
MANY_EMPTY = 0.5


def small_data_warnings(n: int, empty_rate: float | None) -> list[str]:
    """What the tables would show but a user should hear at once: too few rows to conclude, mostly empty answers."""
    warnings = []
    if n < FEW_ROWS:
        warnings.append(
            f"only {n} rows scored: intervals over so few rows are wide, and a difference between runs is unlikely "
            f"to be significant ({FEW_ROWS}+ rows to say much, a few hundred to see small differences)"
        )
    if empty_rate is not None and empty_rate > MANY_EMPTY:
        warnings.append(
            f"{empty_rate:.0%} of the answers are empty (the model ends at once): the scores measure mostly silence; "
            "see the answers in the predictions CSV"
        )
    return warnings


def run(options: argparse.Namespace) -> list[Path]:
    """Score as `options` (this stage's command line) say; the files written: the metrics JSON, its markdown table
    and the per-example CSV (none in the other processes of a multi-process launch)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # started by `accelerate launch` with several processes
        if os.environ.get("RANK", "0") != "0":
            return []
        print(
            "note: score.py scores in this one process: the embedding models score 1,000 pairs in seconds on one "
            "device, so the other processes have nothing to do (metrics are those of a one-process run)",
            file=sys.stderr,
        )
    started = now()
    predictions, references, inputs, filled = resolve_inputs(options)
    options = argparse.Namespace(**{**vars(options), **filled})  # a filled copy: the caller's options stay as given
    options.bertscore_model = options.bertscore_model or metrics.BERTSCORE_MODEL
    options.semantic_model = options.semantic_model or metrics.SEMANTIC_MODEL
    with exclusive_output(options.out):  # one scorer per metrics file
        return score(options, predictions, references, inputs, started)


def default_device(args) -> str:
    """cuda when there is a GPU for the model-based metrics (batched there), else cpu; torch is imported only when a
    model-based metric is asked (the scoring processes start without it)."""
    if args.no_bertscore and args.no_semantic_similarity:
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def main(argv: list[str] | None = None) -> list[Path]:
    return run(make_parser().parse_args(argv))


def score(args, predictions: list[str], references: list[str], inputs: dict, started: str) -> list[Path]:
    out = Path(args.out)
    existing = [path for path in (out, out.with_suffix(".md"), examples_of(out)) if path.exists()]
    if existing and not args.overwrite:
        raise UserError(f"{existing[0]}: already exists (pass --overwrite to replace it)")
    if args.normalize:
        predictions = [normalize_arabic(text) for text in predictions]
        references = [normalize_arabic(text) for text in references]
    device = args.device or default_device(args)
    print(f"scoring {len(predictions)} examples")

    if args.num_workers < 1:
        raise UserError(f"--num_workers {args.num_workers}: give 1 or more")
    per_example, corpus, signatures = metrics.score_texts(
        predictions, references, args.rouge_tokenizer, args.num_workers
    )
    model_metrics = [  # (its name, skipped, model, required, its per-example scores by key)
        ("BERTScore", args.no_bertscore, args.bertscore_model, args.require_bertscore,
         lambda: metrics.bertscore_scores(predictions, references, args.bertscore_model, args.bertscore_layers,
                                          args.batch_size, device)),
        ("semantic similarity", args.no_semantic_similarity, args.semantic_model, args.require_semantic_similarity,
         lambda: {"semantic_similarity": metrics.semantic_similarities(predictions, references, args.semantic_model,
                                                                       args.batch_size, device)}),
    ]  # fmt: skip
    for name, skipped, model, required, compute in model_metrics:
        if not skipped:
            per_example.update(optional_metric(name, model, required, compute) or {})
    summary = metrics.summarize(per_example)
    for warning in small_data_warnings(summary["n"], summary["empty_rate"]):
        print(f"warning: {warning}", file=sys.stderr)
    summary.update(corpus)

    settings = {**inputs, **{key: value for key, value in vars(args).items() if key not in ("out", "num_workers")}}
    settings["device"] = device  # (not the workers: the figures are the same for any number)
    settings["signatures"] = signatures  # sacreBLEU's: how the corpus BLEU and chrF++ were computed
    settings["bertscore_computed"] = summary["bertscore_f1"] is not None
    settings["semantic_similarity_computed"] = summary["semantic_similarity"] is not None
    files = [inputs.get("predictions_csv"), inputs.get("predictions"), inputs.get("references")]
    examples = pd.DataFrame({"prediction": predictions, "reference": references, **per_example})
    with atomic_path(examples_of(out)) as temporary:
        examples.to_csv(temporary, index=False, encoding="utf-8")
    table = metrics_table(
        summary, f"Scores of {inputs.get('predictions_csv') or inputs['predictions']}", args.baseline, args.split
    )
    with atomic_path(out.with_suffix(".md")) as temporary:
        temporary.write_text(table, encoding="utf-8")
    write_json_atomic(out, {**summary, "settings": build_manifest({"scoring": settings}, files, started)})
    print(table)
    print(f"wrote {out}, {out.with_suffix('.md')} and {examples_of(out)}")
    return [out, out.with_suffix(".md"), examples_of(out)]
