"""Talk to a trained model beside its base: a local web page (Gradio) on 127.0.0.1.

    arabic-sft chat demo --port 7860           # make chat RECIPE=demo [PORT=7860] [SEED=N]

Type the recipe's input fields (for the proverbs a proverb; for medical QA a question and a category), or pick a row
of the test split (its reference answer shown), and see side by side the base model's answer, a few-shot
baseline's (for each `make baseline SHOTS=K` made) and the fine-tuned model's, streamed as they are generated, right
to left. Each side is answered as `make eval` / `make baseline` answered: the same model loading, the project's
prompt builder with the recipe's template and chat format, the decoding its predictions were generated with (greedy
unless it sampled, its max_new_tokens), so a test row's answer is the one in its predictions CSV. The page says
which model, adapter, decoding and prompt each side uses.

A script asks the same function through Gradio's API:
    from gradio_client import Client
    Client("http://127.0.0.1:7860/").predict(fields={"proverb": "..."}, api_name="/answers")  # {base, tuned, ...}

Ctrl-C or SIGTERM stops it.
"""

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from arabic_sft.runtime.errors import ScriptParser


PAGE_CSS = """
.answer textarea, .field textarea { font-size: 1.1em; line-height: 1.6; }
"""


def make_parser() -> argparse.ArgumentParser:
    parser = ScriptParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="the recipe whose trained model answers")
    return add_options(parser)


def add_options(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """This stage's options but --config (the console program takes them from here)."""
    parser.add_argument("--seed", type=int, help="of a recipe trained with several seeds: results/<recipe>/seed-N")
    parser.add_argument("--port", type=int, default=7860, help="on 127.0.0.1 (default 7860)")
    parser.add_argument("--split", choices=["test", "validation"], default="test", help="the rows to pick from")
    return parser


def answerer(config: str, recipe, trained, split: str = "test"):
    """The sides make eval and make baseline answered with: the base zero-shot, each few-shot baseline made, and
    the fine-tuned model (`trained`), each with the settings generate.py resolves for it."""
    from arabic_sft.generation.answering import Answerer, generation_record
    from arabic_sft.generation.run import resolve
    from arabic_sft.generation.settings import GenerateOptions
    from arabic_sft.runs import RecipeResults, RunFolder

    def settings(**asked):
        return resolve(GenerateOptions(config=config, split=split, **asked))

    results = RecipeResults(recipe.name)
    base, data = settings(baseline=True)
    sides = [("base model (zero-shot)", base, results.baseline(0))]
    for folder in results.few_shot_baselines():
        record = generation_record(folder, split).get("generation") or {}
        if record.get("shots"):
            shots = settings(baseline=True, shots=record["shots"], seed=record.get("seed", 42))[0]
            sides.append((f"base model ({record['shots']}-shot)", shots, folder))
    where = {"checkpoint_dir": str(trained.model_dir)} if trained.seed is not None else {}
    label = "fine-tuned" + (f" (seed {trained.seed})" if trained.seed is not None else "")
    sides.append((label, settings(**where)[0], RunFolder(trained.results)))
    return Answerer(sides, data, split)


def header(recipe, answering, split: str) -> str:
    """What the page says it uses: the recipe, each side's model, adapter, decoding, and the prompt."""
    lines = [f"**Recipe** `{recipe.name}` · picked rows from its {split} split ({len(answering.rows)} rows)", ""]
    for side in answering.sides:
        about = side.describe()
        adapter = f", adapter `{about['adapter']}`" if about["adapter"] else ""
        shots = f", {about['shots']} solved training rows first" if about["shots"] else ""
        lines.append(
            f"- **{side.label}**: `{about['model']}`{adapter}; {about['prompt']}{shots}; {about['decoding']}, "
            f"up to {about['max_new_tokens']} new tokens"
        )
    return "\n".join(lines)


def build_page(recipe, answering, split: str = "test"):
    """The Gradio page: the input fields, a test-row picker with its reference, one answer box per side."""
    import gradio as gr

    template = recipe.args.prompt_template or ""
    with gr.Blocks(title=f"arabic-sft chat: {recipe.name}", analytics_enabled=False) as page:
        gr.Markdown(f"## {recipe.name}: the fine-tuned model beside its base")
        gr.Markdown(header(recipe, answering, split))
        if template:
            with gr.Accordion("The prompt template (the project's prompt builder fills it)", open=False):
                gr.Textbox(value=template, show_label=False, interactive=False, lines=4, elem_id="template")
        rows = range(len(answering.rows))
        choices = [(f"{index}: {answering.fields_of(index)[0][0][:70]}", index) for index in rows]
        picker = gr.Dropdown(choices=choices, value=None, label=f"a {split} row (fills the fields)", elem_id="row")
        with gr.Row():
            with gr.Column():
                fields = [
                    gr.Textbox(label=name, rtl=True, lines=2, elem_id=f"field-{name}", elem_classes="field")
                    for name in answering.fields
                ]
                ask = gr.Button("Answer", variant="primary", elem_id="ask")
            reference = gr.Textbox(label="reference answer (the picked row's)", rtl=True, interactive=False,
                                   lines=4, elem_id="reference")  # fmt: skip
        with gr.Row():
            sides = [
                gr.Textbox(
                    label=side.label,
                    rtl=True,
                    interactive=False,
                    lines=8,
                    max_lines=16,
                    elem_id=f"side-{number}",
                    elem_classes="answer",
                )  # fmt: skip
                for number, side in enumerate(answering.sides)
            ]

        def pick(index):
            if index is None:
                return [gr.update()] * (len(fields) + 1)
            values, answer = answering.fields_of(int(index))
            return [*values, answer]

        def answer(*values):
            yield from (tuple(texts) for texts in answering.stream(list(values)))

        picker.change(pick, inputs=picker, outputs=[*fields, reference], api_visibility="private")
        ask.click(answer, inputs=fields, outputs=sides, api_name="answer")
        gr.api(answering.answers, api_name="answers")  # for scripts: the fields by name in, the sides by name out
    return page


def run(args: argparse.Namespace) -> list[Path]:
    """Serve the page as `args` (this stage's command line) say, until stopped; writes nothing."""
    from arabic_sft.recipe.check import trained_model_of
    from arabic_sft.runtime.ports import check_port
    from arabic_sft.runtime.stopping import StopRequest

    check_port(args.port)
    trained = trained_model_of(args.config, args.seed)  # a recipe never trained: one line, before loading TRL
    from arabic_sft.recipe import load_recipe

    recipe = load_recipe(["--config", args.config])
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # nothing sent outside this machine
    answering = answerer(args.config, recipe, trained, args.split)
    page = build_page(recipe, answering, args.split)
    stop = StopRequest("stopping the page")
    try:
        page.queue(default_concurrency_limit=1)  # one answer at a time: the models are shared
        page.launch(server_name="127.0.0.1", server_port=args.port, prevent_thread_lock=True, quiet=True,
                    ssr_mode=False, css=PAGE_CSS, footer_links=["api"])  # fmt: skip
        print(f"chat with {trained.display} at http://127.0.0.1:{args.port}/ (Ctrl-C stops it)", flush=True)
        while not stop.requested:
            time.sleep(0.2)
    finally:
        stop.close()
        page.close()
    print(f"stopped the chat page ({signal.Signals(stop.signal).name})", file=sys.stderr)
    return []


def main(argv: list[str] | None = None) -> list[Path]:
    return run(make_parser().parse_args(argv))
