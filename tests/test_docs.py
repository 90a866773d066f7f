"""Every command in README.md and docs/ works as written on a fresh clone with ../shared beside it, or says what to
fetch. Each is taken from the pages' bash blocks and checked without running it (what runs long, needs a GPU or starts
a server is run by its stage's tests): a make target exists and its variables are the Makefile's, the console program
and each script take the arguments given, every recipe, sweep, config and script named exists, and every data file a
named recipe reads is in the clone, is put there by `make data`, or the command's line says where it comes from."""

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
from helpers import ROOT

from arabic_sft import cli
from arabic_sft.recipe.check import recipe_arguments


PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# Commands this test does not check, by how they start: why.
ELSEWHERE = {
    "git ": "version control, no project command",
    "PYTHONPATH=/tmp/landed": "a record of how a benchmark figure was measured on an older commit's checkout",
    "export ": "sets a variable for the next command",
    "rm ": "removes a folder",
    "grep ": "reads a file the command before wrote",
    "vllm ": "a server on a GPU machine (vLLM is not installed here: no GPU)",
    "sbatch ": "Slurm: tests/test_slurm.py submits these scripts to a cluster it starts",
    "llama.cpp/": "llama.cpp's own tools, built from its source",
    "python llama.cpp/": "llama.cpp's own converter, from its source",
    ".venv/bin/pip install ": "an optional tracker, installed by hand when wanted",
    "GPUS_PER_NODE=": "Slurm: tests/test_slurm.py",
    "sed ": "writes a recipe: run by the check of each command after it that names the recipe",
    "ollama ": "Ollama, not installed here: tests/test_gguf.py renders its Modelfile with Go's text/template",
}

# Recipe (and sweep) names a page uses for a file the reader has or makes: where the page says so.
PLACEHOLDERS = {"my_data": "README step 2 writes recipes/my_data.yaml", "r": "any recipe",
                "demo_best": "make sweep SWEEP=demo writes it (docs/sweeps.md)",
                "my_70b": "the reader's recipe for a 70B model (docs/generation.md)",
                "one": "a one-trial sweep file, written for the measurement docs/sweeps.md reports"}  # fmt: skip


def doc_commands() -> list[tuple[str, str, str, tuple[str, ...]]]:
    """(page:line, command, the comment on its line and the prose above its block, the commands before it in its
    block that write a recipe) for every command of the pages' bash blocks, continuation lines joined."""
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for block in re.finditer(r"```(?:bash|sh)\n(.*?)```", text, re.S):
            around = text[max(0, block.start() - 600) : block.end() + 600]  # the prose around, the block's comments
            first = text[: block.start()].count("\n") + 2
            command, start, writers = "", first, []
            for number, line in enumerate(block.group(1).splitlines(), first):
                command = f"{command} {line.strip()}" if command else line.strip()
                if command.endswith("\\"):
                    command = command[:-1]
                    continue
                code, _, comment = command.partition(" # ")
                if code.strip() and not code.startswith("#"):
                    found.append(
                        (f"{page.relative_to(ROOT)}:{start}", code.strip(), comment + " " + around, tuple(writers))
                    )
                    if re.search(r"> recipes/\w+\.yaml$", code.strip()):
                        writers.append(code.strip())
                command, start = "", number + 1
    return found


COMMANDS = doc_commands()


def made_by_make_data(path: Path) -> bool:
    """A file `make data` puts in the clone: the proverbs, from $SHARED_DATA's copy (checked to be there)."""
    shared = Path(os.environ.get("SHARED_DATA", ROOT.parent / "shared" / "data"))
    return path.parent == ROOT / "data" / "yemeni_proverbs" and (shared / "yemeni_proverbs" / path.name).is_file()


def check_recipe_data(recipe: str, said: str) -> None:
    """Each local data file the recipe reads is here, comes from `make data`, or `said` names its folder (where the
    page says how to fetch it)."""
    arguments = recipe_arguments(recipe)
    for split in ("train", "validation", "test"):
        name = getattr(arguments, f"{split}_file")
        if not name:
            continue
        path = (ROOT / name).resolve()
        folder = str(Path(name).parent)
        assert path.exists() or made_by_make_data(path) or folder in said, (
            f"{recipe} reads {name}, which a fresh clone lacks: the command's line must say where it comes from"
        )


def stage_parser(script: Path):
    """The parser of the stage a script is the command line of (None for sft.py: the recipe loader parses)."""
    module = re.search(r"from (arabic_sft\.[\w.]+) import main", script.read_text(encoding="utf-8"))
    if script.name == "sft.py" or module is None:
        return None
    import importlib

    return importlib.import_module(module.group(1)).make_parser()


def written_recipes(writers: tuple[str, ...], folder: Path) -> dict[str, str]:
    """{name: where it was written in `folder`} for the block's commands that write recipes/NAME.yaml, run here."""
    written = {}
    for command in writers:
        left, target = command.rsplit(">", 1)
        result = subprocess.run(shlex.split(left), cwd=ROOT, capture_output=True, text=True, check=True)
        path = folder / Path(target.strip()).name
        path.write_text(result.stdout, encoding="utf-8")
        written[path.stem] = str(path)
    return written


def check_make(words: list[str], said: str) -> None:
    dry = subprocess.run(["make", "-n", *words], cwd=ROOT, capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    variables = set(re.findall(r"^(\w+) \??=", makefile, re.M)) | set(re.findall(r"\$\((\w+)\)", makefile))
    for word in words[1:]:
        assert word.split("=")[0] in variables, f"{word}: not a variable of the Makefile"
    line = next((line for line in dry.stdout.splitlines() if " -m arabic_sft " in f"{line} "), None)
    if line is None:
        return  # a target that is not a stage (test, bench-gpu, ...): its existence is the check
    argv = shlex.split(line.split(" -m arabic_sft", 1)[1])
    if any(word.startswith(("RECIPE=", "SWEEP=")) and word.split("=", 1)[1] in PLACEHOLDERS for word in words):
        return
    options = cli.parse(argv)
    if getattr(options, "recipe", None):
        check_recipe_data(str(cli.named.find("recipe", options.recipe)), said)
    if options.stage == "sweep":
        cli.named.find("sweep", options.sweep)


def check_script(words: list[str], said: str) -> None:
    if words[0].endswith("accelerate"):  # accelerate launch [its flags] SCRIPT ARGS
        config = words[words.index("--config_file") + 1]
        assert (ROOT / config).is_file(), config
        words = words[next(i for i, word in enumerate(words) if word.endswith(".py")) :]
    else:
        words = words[1:]
    script, arguments = ROOT / words[0], words[1:]
    assert script.is_file(), words[0]
    for flag, value in zip(arguments, arguments[1:]):
        if flag in ("--config", "--sweep") and Path(value).stem not in PLACEHOLDERS:
            assert (ROOT / value).is_file(), value
            if flag == "--config":
                check_recipe_data(str(ROOT / value), said)
    if any(Path(word).stem in PLACEHOLDERS for word in arguments):
        return
    if (parser := stage_parser(script)) is not None:
        parser.parse_args(arguments)  # one `error:` line (UserError) when it does not take them
    elif script.name == "sft.py":
        from arabic_sft.recipe import load_recipe

        load_recipe(arguments)


@pytest.mark.parametrize("where, command, said, writers", COMMANDS, ids=[where for where, *_ in COMMANDS])
def test_every_command_of_the_docs_works_on_a_fresh_clone(where, command, said, writers, monkeypatch, tmp_path):
    monkeypatch.chdir(ROOT)
    for name, path in written_recipes(writers, tmp_path).items():  # a recipe the block wrote: where it is now
        command = command.replace(f"RECIPE={name}", f"RECIPE={path}")
    if reason := next((why for start, why in ELSEWHERE.items() if command.startswith(start)), None):
        assert reason
        return
    words = shlex.split(command.removesuffix("&"))  # `&`: in the background
    while words and re.fullmatch(r"\w+=.*", words[0]):  # VAR=value before a command: its environment
        monkeypatch.setenv(*words.pop(0).split("=", 1))
    if words[0] == "time":
        words.pop(0)
    if words[0] == "make":
        check_make(words[1:], said)
    elif words[0] in (".venv/bin/python", "python3", ".venv/bin/accelerate", "accelerate", "bash"):
        if words[1:3] == ["-m", "arabic_sft.training.launch"]:
            words = [words[0], *words[3:]]
            words = ["accelerate", *words[1:]]
        check_script(words, said)
    elif words[:2] == [".venv/bin/transformers", "serve"]:  # transformers' own server: its options checked
        helped = subprocess.run([str(ROOT / ".venv/bin/transformers"), "serve", "--help"], capture_output=True,
                                text=True, env={**os.environ, "COLUMNS": "200"})  # fmt: skip
        assert all(word in helped.stdout for word in words[2:] if word.startswith("--")), (where, helped.stdout)
    elif words[0] == ".venv/bin/tensorboard":
        assert (ROOT / ".venv" / "bin" / "tensorboard").is_file() or "tensorboard" in (
            ROOT / "requirements.txt"
        ).read_text(encoding="utf-8")
    else:
        pytest.fail(f"{where}: {command}: a command this test does not know; check it here or say why in ELSEWHERE")


def test_a_missing_data_file_says_how_to_get_it():
    from arabic_sft.data.formats import read_table
    from arabic_sft.runtime.errors import UserError

    assert len(COMMANDS) > 100
    with pytest.raises(UserError, match="kaggle.com/datasets/abdoashraf90/ahqad.*docs/data.md shows how"):
        read_table(ROOT / "data" / "ahqad" / "train.csv")
    with pytest.raises(UserError, match="make data puts them there"):
        read_table(ROOT / "data" / "yemeni_proverbs" / "absent.csv")
