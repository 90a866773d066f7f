"""`arabic-sft`: one program over the stages (also `python -m arabic_sft`); the Makefile's targets are aliases of it.

    arabic-sft train demo                               # make train RECIPE=demo
    arabic-sft train demo --seeds 1 2 3                 # one complete run per seed in results/demo/seed-N/
    arabic-sft train demo --num_train_epochs 1          # any recipe field, as sft.py takes it
    arabic-sft eval demo --limit 20                     # generate, score (and judge) the test split
    arabic-sft baseline demo --shots 3                  # the untrained base, 3 solved rows before each prompt
    arabic-sft compare demo && arabic-sft report demo
    arabic-sft demo                                     # the whole flow on a tiny model, on this CPU

This program owns the orchestration: which stages run in which order, once per training seed (the recipe's `seeds`,
or --seeds), and how each is launched (one process, or `accelerate launch` with --launch_args). Each stage runs as
its own process, the command printed first (`+ ...`), so that a GPU launch, a crash or a Ctrl-C in one stage is that
stage's alone; the program stops at the first stage that fails, with its exit status.
"""

import argparse
import os
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from arabic_sft import named
from arabic_sft.recipe import check_recipe, read_fields
from arabic_sft.recipe.check import our_fields, precision_refusal, recipe_arguments
from arabic_sft.runs import RecipeResults, RunFolder, untrained
from arabic_sft.runtime.errors import FRONT, ScriptParser, UserError, run_cli
from arabic_sft.runtime.machine import surely_no_gpu
from arabic_sft.stages import board as board_stage  # noqa: I001 (its options: add_options)
from arabic_sft.stages import chat, data_check, export, publish, serve  # their own options (add_options)


SCRIPTS = Path("scripts")
# The fields of a recipe that decide what eval and baseline run besides generation and scoring.
EVAL_FIELDS = ("judge_model", "bertscore_model", "semantic_model", "seeds")


class StageFailed(Exception):
    def __init__(self, status: int):
        super().__init__(status)
        self.status = status if status > 0 else 128 - status  # killed by signal N: the shell's 128 + N


def flag(name: str, value) -> list[str]:
    """`[name, value]`, or nothing when the value is not given."""
    return [] if value is None else [name, str(value)]


def script(name: str) -> str:
    """A script of the project: scripts/NAME.py here, else the project's own."""
    path = SCRIPTS / f"{name}.py"
    return str(path if path.is_file() else named.PROJECT_ROOT / path)


def stage_environment() -> dict:
    """A stage's environment: this one's, and the user's door (make's, else ours) for its hints (`as_given`)."""
    return {**os.environ, FRONT: os.environ.get(FRONT, "arabic-sft")}


def step(command: list[str], show: bool = False) -> None:
    """Run one stage's command to its end, printed first; SIGTERM is passed on to it (Ctrl-C reaches it by itself),
    and a stage that fails ends the program with its status. `show` (--show): print the command only, as `make -n`."""
    if show:
        print(shlex.join(command), flush=True)
        return
    print("+ " + shlex.join(command), file=sys.stderr, flush=True)
    process = subprocess.Popen(command, env=stage_environment())
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: process.send_signal(signum))
    status = None
    try:
        while status is None:
            try:
                status = process.wait()
            except KeyboardInterrupt:  # the stage has the same Ctrl-C: let it stop as it does
                pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    if status != 0:
        raise StageFailed(status)


class Pipeline:
    """The stages of one recipe, as its options ask."""

    def __init__(self, options: argparse.Namespace):
        self.options = options
        self.show = options.show
        self.recipe = options.recipe
        self.path = named.find("recipe", options.recipe) if options.recipe else None
        if self.path:
            check_recipe(self.path)  # a mistyped recipe is one line now, before any stage starts
        self.results = RecipeResults(self.path.stem) if self.path else None

    def fields(self) -> dict:
        """The recipe fields eval and baseline follow, read once (without loading TRL)."""
        if not hasattr(self, "_fields"):
            self._fields = read_fields(self.path, *EVAL_FIELDS)
        return self._fields

    def step(self, command: list[str]) -> None:
        step(command, self.show)

    def own_options(self) -> list[str]:
        """The stage's own options (declared by the stage: its add_options), as its command line takes them."""
        arguments = []
        for option, dest, switch in self.options.own_options:
            value = getattr(self.options, dest)
            arguments += ([option] if value else []) if switch else flag(option, value)
        return arguments

    def launch(self) -> list[str]:
        """One process, or `accelerate launch` with --launch_args (e.g. "--num_processes 8": one per GPU)."""
        extra = shlex.split(getattr(self.options, "launch_args", None) or "")  # endpoint: one process asks
        if not extra:
            return [sys.executable]
        accelerate = str(Path(sys.executable).parent / "accelerate")
        config = named.PROJECT_ROOT / "accelerate_configs" / "ddp.yaml"
        # one machine: a free port (accelerate's 0), so that two launches on it never meet at the default 29500
        named_port = any(arg.startswith(("--main_process_port", "--num_machines")) for arg in extra)
        port = [] if named_port else ["--main_process_port", "0"]
        return [accelerate, "launch", "--config_file", str(config), "--mixed_precision", "no", *port, *extra]

    def seeds(self) -> list[int]:
        return list(self.options.seeds or self.fields()["seeds"] or [])

    def model_metrics(self) -> list[str]:
        fields = self.fields()
        return [
            *flag("--bertscore_model", fields["bertscore_model"]),
            *flag("--semantic_model", fields["semantic_model"]),
        ]

    def refuse_quickly(self, splits: tuple[str, ...], models: list[str] = ()) -> None:
        """The refusals that need no model, in the command's first second (each stage checks again, after its
        imports): a GPU precision on a machine with no GPU device (train), a fine-tuned `models` folder missing
        (eval), a data file among `splits` missing or without a column the recipe reads (on its first rows). What a
        train override (--FIELD VALUE) sets is left to the stage."""
        if self.show:
            return
        given = {item.split("=")[0].removeprefix("--") for item in self.options.fields if item.startswith("--")}
        values = check_recipe(self.path)
        if self.options.stage == "train" and {"bf16", "fp16"} & set(values) - given and surely_no_gpu():
            fields = argparse.Namespace(**{name: values.get(name) for name in ("bf16", "fp16", "use_cpu")})
            if refusal := precision_refusal(str(self.path), fields, gpu=False, bf16_gpu=False):
                raise UserError(refusal)
        for model in models:
            if not Path(model).is_dir():
                raise untrained(model, self.results.name)
        if not given & set(our_fields()):
            from arabic_sft.data.splits import check_first_rows  # pandas: only when there is data to read

            check_first_rows(recipe_arguments(self.path), splits)

    def common(self) -> list[str]:
        return [*flag("--limit", self.options.limit), *(["--overwrite"] if self.options.overwrite else [])]

    # The stages ---------------------------------------------------------------------------------------------------
    def train(self) -> None:
        options = self.options
        config = options.accelerate_config and f"accelerate_configs/{options.accelerate_config}.yaml"
        launcher = [sys.executable, "-m", "arabic_sft.training.launch", *flag("--config_file", config)]
        launcher += shlex.split(options.launch_args or "")
        self.refuse_quickly(("train", "validation"))
        command = [*launcher, script("sft"), "--config", str(self.path)]
        for seed in self.seeds() or [None]:
            model = None if seed is None else self.results.seed(seed).model
            self.step([*command, *flag("--seed", seed), *flag("--output_dir", model), *options.fields])

    def recipe_value(self, name: str):
        """A field as the recipe file sets it (output_dir, model_name_or_path), read without loading TRL."""
        return named.read_yaml(self.path).get(name)

    def generate_and_score(self, folder, generate: list[str], score: list[str], model) -> None:
        """Generation (unless its answers exist, are `model`'s as it is now, and --overwrite is not given), then
        scoring, then the judge."""
        options, predictions = self.options, folder.predictions(self.options.split)
        stale = model is not None and folder.stale_answers(options.split, model)
        if predictions.is_file() and not options.overwrite and not stale:
            print(f"{predictions} exists: scoring it as it is (OVERWRITE=1 generates it again)", file=sys.stderr)
        else:
            if stale and not options.overwrite:
                print(f"{predictions}: {stale}: generating it again", file=sys.stderr)
            again = ["--overwrite"] if stale and not options.overwrite else []
            self.step([*self.launch(), script("generate"), *generate, "--split", options.split, *self.common(), *again,
                  *shlex.split(options.generate_args or "")])  # fmt: skip
        self.step([sys.executable, script("score"), *score, "--split", options.split, "--overwrite",
                   *self.model_metrics(), *shlex.split(options.score_args or "")])  # fmt: skip
        if self.fields()["judge_model"]:
            self.step([*self.launch(), script("judge"), str(predictions), "--config", str(self.path), "--overwrite",
                  *shlex.split(options.judge_args or "")])  # fmt: skip

    def eval(self) -> None:
        recipe, split = ["--config", str(self.path)], self.options.split
        seeds = self.seeds()
        models = [str(self.results.seed(seed).model) for seed in seeds]
        self.refuse_quickly((split,), models or [read_fields(self.path, "output_dir")["output_dir"]])
        for seed in seeds or [None]:
            if seed is None:
                self.generate_and_score(self.results.tuned, recipe, recipe, self.recipe_value("output_dir"))
                continue
            folder = self.results.seed(seed)
            where = ["--checkpoint_dir", str(folder.model), "--out_path", str(folder.predictions(split))]
            self.generate_and_score(folder, [*recipe, *where], [str(folder.predictions(split))], folder.model)

    def baseline(self) -> None:
        self.refuse_quickly((self.options.split,))
        folder = self.results.baseline(self.options.shots)
        generate = ["--config", str(self.path), "--baseline", "--shots", str(self.options.shots)]
        model = self.recipe_value("model_name_or_path")
        self.generate_and_score(folder, generate, [str(folder.predictions(self.options.split))], model)

    def endpoint(self) -> None:
        """A model behind an OpenAI-compatible endpoint asked the test rows as eval asks (generate.py's endpoint
        backend), then scored and judged as every other run: results/<recipe>/endpoint-NAME/."""
        options, split = self.options, self.options.split
        asked = self.endpoints_asked()
        self.refuse_quickly((split,))
        for name, settings in asked.items():
            folder = self.results.endpoint(name)
            ask = ["--config", str(self.path), "--endpoint_url", settings["url"], "--endpoint_model",
                   settings["model"], "--out_path", str(folder.predictions(split)),
                   *flag("--endpoint_key_env", options.key_env or settings.get("key_env")),
                   *flag("--concurrency", options.concurrency or settings.get("concurrency")),
                   *flag("--token_budget", options.token_budget)]  # fmt: skip
            self.generate_and_score(folder, ask, [str(folder.predictions(split))], None)

    def endpoints_asked(self) -> dict[str, dict]:
        """{name: url, model...}: the endpoint --url and --model give, else the recipe's `endpoints` one named by
        --name, else every one it lists."""
        options = self.options
        if options.url or options.model:
            if not (options.url and options.model):
                raise UserError("an endpoint is --url and --model together (URL= and MODEL=)")
            return {options.name or options.model: {"url": options.url, "model": options.model}}
        listed = read_fields(self.path, "endpoints")["endpoints"] or {}
        if not listed:
            raise UserError(f"{self.path}: lists no endpoints: give --url and --model (URL= and MODEL=)")
        if options.name and options.name not in listed:
            raise UserError(f"{self.path}: no endpoint named {options.name} (it lists: {', '.join(listed)})")
        return {options.name: listed[options.name]} if options.name else listed

    def judge(self) -> None:
        options = self.options
        against = (
            RunFolder(self.results.path / options.pairwise).predictions(options.split) if options.pairwise else None
        )
        self.step([*self.launch(), script("judge"), "--config", str(self.path), "--split", options.split,
                   "--overwrite", *flag("--against", against), *flag("--limit", options.limit),
                   *shlex.split(options.judge_args or "")])  # fmt: skip

    def general(self) -> None:
        options = self.options
        self.step([*self.launch(), script("general"), "--config", str(self.path),
              *(["--tasks", *options.tasks] if options.tasks else []), *self.common(),
              *shlex.split(options.general_args or "")])  # fmt: skip

    def compare(self) -> None:
        split = self.options.split
        self.step([sys.executable, script("compare"), "--config", str(self.path), "--split", split, "--overwrite"])

    def report(self) -> None:
        screenshot = self.options.screenshot
        if screenshot == "auto":
            screenshot = "yes" if shutil.which("chromium") and shutil.which("chromedriver") else "no"
        self.step([sys.executable, script("report"), "--config", str(self.path), "--split", self.options.split,
              "--overwrite", *(["--screenshot"] if screenshot == "yes" else [])])  # fmt: skip

    def own_stage(self) -> None:
        """A stage whose options are its own (export, serve, chat, publish, data-check), run with them."""
        name = self.options.stage.replace("-", "_")
        self.step([sys.executable, script(name), "--config", str(self.path), *self.own_options()])


def sweep(options: argparse.Namespace) -> None:
    """Optuna over a sweep file: checked once, then --workers processes on this machine sharing one study."""
    path = named.find("sweep", options.sweep)
    step([sys.executable, script("sweep"), "--sweep", str(path), "--check"], options.show)
    command = [sys.executable, script("sweep"), "--sweep", str(path)]
    if options.show:
        print(f"{options.workers} x {shlex.join(command)}")
        return
    print(f"+ {options.workers} x {shlex.join(command)}", file=sys.stderr, flush=True)
    # Workers sharing one terminal: their progress bars would redraw over each other's lines (a trial's "complete"
    # line was lost under another's bar); each trial's start and end lines are the progress then.
    environment = {**stage_environment(), "ARABIC_SFT_SWEEP_WORKERS": str(options.workers)}
    workers = [subprocess.Popen(command, env=environment) for _ in range(options.workers)]
    statuses = [worker.wait() for worker in workers]
    if failed := next((status for status in statuses if status != 0), None):
        raise StageFailed(failed)


def board(options: argparse.Namespace) -> None:
    """The leaderboard of one recipe's systems, or of several recipes' on the first's test rows."""
    arguments = [*options.recipes, "--split", options.split, "--metric", options.metric, "--resamples",
                 str(options.resamples), "--seed", str(options.seed), "--overwrite"]  # fmt: skip
    step([sys.executable, script("board"), *arguments, *(["--each_seed"] if options.each_seed else [])], options.show)


def demo_recipe() -> str:
    """The demo's recipe: `demo` once the real proverbs are in data/ (fetched now if need be), else `demo_offline`
    (the shipped sample rows), with a note saying why."""
    from arabic_sft.data import fetch

    try:
        fetch.run()
        return "demo"
    except UserError as error:
        print(f"note: the real proverbs cannot be had here ({error}): the demo runs on the 12 sample rows shipped "
              "in data/samples/ (recipes/demo_offline.yaml, results/demo_offline/); its scores prove the flow, not "
              "the method", file=sys.stderr, flush=True)  # fmt: skip
        return "demo_offline"


def demo(options: argparse.Namespace) -> None:
    """The whole flow on a tiny local model trained on the proverbs, on this CPU: the real proverbs when they can be
    had (a shared copy, or GitHub), else the shipped sample rows (recipes/demo_offline.yaml), said first."""
    recipe = "demo" if options.show else demo_recipe()
    step([sys.executable, script("make_tiny_model"), "--config", f"recipes/{recipe}.yaml", "--vocab_size", "4000",
          "--hidden_size", "128", "--num_layers", "4"], options.show)  # fmt: skip
    stages = ["train", "eval", "baseline", "general", "compare", "report"]
    for name in stages:
        getattr(Pipeline(parse([*(["--show"] if options.show else []), name, recipe])), name)()
    results = RecipeResults(recipe).path
    shot = results / "report.png"
    print(
        f"demo done: model, run_manifest.json and loss.png in {results}/model; predictions, metrics, baseline and "
        f"compare_test.md in {results}; the report: {results}/report.html"
        + (f" ({shot}: how it looks)" if shot.is_file() else "")
    )


def data(options: argparse.Namespace) -> None:
    from arabic_sft.data import fetch

    fetch.run()


def bench(options: argparse.Namespace) -> None:
    """The CPU benchmark on a few-million-parameter Llama, so that compute (not Python overhead) dominates."""
    model = "models/bench-llama"
    step([sys.executable, script("make_tiny_model"), "--config", "recipes/demo.yaml", "--out", model, "--vocab_size",
          "4000", "--hidden_size", "256", "--num_layers", "4", "--num_heads", "4"], options.show)  # fmt: skip
    step([sys.executable, script("benchmark"), "--config", "recipes/demo.yaml", "--model", model], options.show)
    # (its --out: the benchmark's default, results/bench/cpu.json); then the data check at 10k, 100k, 1M rows, and
    # score, compare and report (and the page in chromium) at 1k, 10k, 100k test rows
    step([sys.executable, script("bench_data_check")], options.show)
    step([sys.executable, script("bench_eval")], options.show)


# The commands that are not one recipe's stages.
WHOLE_PROGRAMS = {"sweep": sweep, "board": board, "demo": demo, "bench": bench, "data": data}
STAGES = {
    "train": "train the recipe (one run per seed with --seeds or the recipe's seeds)",
    "eval": "generate on the split, score (and judge, when the recipe names a judge): results/<recipe>/",
    "baseline": "the untrained base model, generated and scored like eval (--shots K: K solved rows shown)",
    "endpoint": "a model behind any OpenAI-compatible endpoint (--url, --model), asked and scored like eval: "
    "results/<recipe>/endpoint-NAME/",
    "judge": "an LLM judge scores each answer (the recipe's judge_model); --pairwise RUN: against that run",
    "general": "general ability, base against fine-tuned, through lm-evaluation-harness",
    "compare": "the fine-tuned run against its baselines, with intervals and paired tests",
    "report": "one self-contained HTML page of the results",
    "publish": "the trained model, its card, recipe and results to the Hub in one commit",
    "export": "the trained model as one folder for from_pretrained (an adapter merged): results/<recipe>/export/",
    "serve": "the trained model to any OpenAI client on 127.0.0.1 (transformers serve), until Ctrl-C",
    "chat": "a web page on 127.0.0.1 (Gradio): the fine-tuned model's answers beside its base's, until Ctrl-C",
    "data-check": "near-duplicate and contaminated rows: results/<recipe>/data_check.json, data_check_pairs.csv",
}


# The options the program gives several stages of its own orchestration: (flag, argparse settings, those stages).
SHARED_OPTIONS = (
    ("--launch_args", {"help": 'accelerate launch flags, e.g. "--num_processes 8" (one per GPU)'},
     ("train", "eval", "baseline", "judge", "general")),
    ("--seeds", {"nargs": "+", "type": int, "help": "one run per training seed (default: the recipe's)"},
     ("train", "eval")),
    ("--limit", {"type": int, "help": "the first N examples (questions per task for general)"},
     ("eval", "baseline", "endpoint", "general", "judge")),
    ("--overwrite", {"action": "store_true", "help": "generate (evaluate) again though it exists"},
     ("eval", "baseline", "endpoint", "general")),
    ("--generate_args", {"help": "more flags for generate.py, e.g. '--batch_size 32'"},
     ("eval", "baseline", "endpoint")),
    ("--score_args", {"help": "more flags for score.py, e.g. '--no_bertscore'"}, ("eval", "baseline", "endpoint")),
    ("--judge_args", {"help": "more flags for judge.py"}, ("eval", "baseline", "endpoint", "judge")),
)  # fmt: skip
# The stages whose options the stage declares (its add_options): the program passes them on as they are given.
OWN_OPTIONS = {"publish": publish, "export": export, "serve": serve, "chat": chat, "data-check": data_check}


def add_own_options(sub: argparse.ArgumentParser, stage) -> None:
    """The options the `stage` module declares (its add_options), recorded as (flag, name, switch) for passing on."""
    before = len(sub._actions)  # argparse's list of the parser's arguments
    stage.add_options(sub)
    switch = argparse._StoreTrueAction
    added = [(action.option_strings[0], action.dest, isinstance(action, switch)) for action in sub._actions[before:]]
    sub.set_defaults(own_options=added)


def parser() -> argparse.ArgumentParser:
    main = ScriptParser(prog="arabic-sft", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    main.add_argument("--show", action="store_true", help="print the stages' commands, run nothing")
    stages = main.add_subparsers(dest="stage", required=True, metavar="STAGE", parser_class=ScriptParser)

    def add(name: str, help: str, recipe: bool = True) -> argparse.ArgumentParser:
        sub = stages.add_parser(name, help=help, description=help, allow_abbrev=False)
        sub.add_argument("--show", action="store_true", default=argparse.SUPPRESS, help="print the commands only")
        if recipe:
            sub.add_argument("recipe", help="recipes/NAME.yaml, NAME, or a recipe's path")
        if recipe and name not in OWN_OPTIONS:
            sub.add_argument("--split", default="test", choices=["test", "validation"])
        return sub

    for name, help in STAGES.items():
        sub = add(name, help)
        for option, settings, stages_with_it in SHARED_OPTIONS:
            if name in stages_with_it:
                sub.add_argument(option, **settings)
    stages.choices["train"].add_argument(
        "--accelerate_config", help="a config in accelerate_configs/ (default: the recipe's)"
    )
    stages.choices["baseline"].add_argument("--shots", type=int, default=0, help="solved training rows shown (0)")
    endpoint = stages.choices["endpoint"]
    endpoint.add_argument("--url", help="the endpoint's base URL, e.g. http://127.0.0.1:8000/v1 (else the recipe's)")
    endpoint.add_argument("--model", help="the model name it serves")
    endpoint.add_argument("--name", help="the system's name: results/<recipe>/endpoint-NAME/ (default: the model's); "
                          "without --url, the recipe's endpoint of that name (none: each it lists)")  # fmt: skip
    endpoint.add_argument("--key_env", help="the environment variable holding its API key (never written)")
    endpoint.add_argument("--concurrency", type=int, help="requests in flight (default 8)")
    endpoint.add_argument("--token_budget", type=int, help="tokens this run may spend (as the server counts them)")
    stages.choices["judge"].add_argument(
        "--pairwise", metavar="RUN", help="a run's folder name, e.g. baseline-zero-shot"
    )
    stages.choices["general"].add_argument("--tasks", nargs="+", help="lm-eval tasks (default: the recipe's)")
    stages.choices["general"].add_argument("--general_args", help="more flags for general.py")
    stages.choices["report"].add_argument(
        "--screenshot", choices=["auto", "yes", "no"], default="auto", help="report.png too (auto: with chromium)"
    )
    for name, module in OWN_OPTIONS.items():
        add_own_options(stages.choices[name], module)
    sweep_parser = add(
        "sweep", "Optuna over recipes/sweeps/NAME.yaml; the best as recipes/NAME_best.yaml", recipe=False
    )
    sweep_parser.add_argument("sweep", help="recipes/sweeps/NAME.yaml, or NAME")
    sweep_parser.add_argument("--workers", type=int, default=1, help="processes sharing the study on this machine")
    board_parser = add("board", "every system of the recipes on the same test rows (the first's), ranked, each "
                       "against the best with paired tests: results/<recipe>/board_<split>.{md,csv,json}",
                       recipe=False)  # fmt: skip
    board_parser.add_argument("recipes", nargs="+", metavar="RECIPE", help="recipes/NAME.yaml or NAME")
    board_stage.add_options(board_parser)
    add("demo", "a tiny model trained on the proverbs on this CPU, then eval, baseline, general, compare, report",
        recipe=False)  # fmt: skip
    add("data", "the real Yemeni proverbs into data/yemeni_proverbs/ ($SHARED_DATA's copy, else GitHub), checked",
        recipe=False)  # fmt: skip
    add("bench", "the CPU benchmark, the seed way against ours: results/bench/cpu.{json,md}; the data check at "
        "scale: results/bench/data_check.{json,md}; evaluation at scale: results/bench/eval.{json,md}",
        recipe=False)  # fmt: skip
    return main


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The options of a command line, checked; train's --FIELD VALUE overrides go to sft.py as they are."""
    options, fields = parser().parse_known_args(argv)
    if fields and options.stage != "train":
        raise UserError(
            f"{options.stage}: unrecognized arguments: {' '.join(fields)} (see arabic-sft {options.stage} --help)"
        )
    options.fields = fields
    if (
        options.stage in ("eval", "baseline", "endpoint", "general", "judge")
        and options.limit is not None
        and options.limit < 1
    ):
        raise UserError(f"--limit {options.limit}: give 1 or more")
    return options


def main(argv: list[str] | None = None) -> int:
    options = parse(argv)
    try:
        if options.stage in WHOLE_PROGRAMS:
            WHOLE_PROGRAMS[options.stage](options)
        else:
            pipeline = Pipeline(options)
            getattr(pipeline, options.stage.replace("-", "_"), pipeline.own_stage)()
    except StageFailed as failed:
        return failed.status
    return 0


def entry_point() -> None:
    run_cli(main)


if __name__ == "__main__":
    entry_point()
