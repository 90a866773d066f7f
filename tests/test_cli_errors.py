"""Bad input stops sft.py in seconds with one line naming the file/column/key, a non-zero exit and no traceback."""

from helpers import SAMPLE_FILES, assert_one_error_line, write_recipe


def test_missing_data_file(make_recipe, tiny_llama, tmp_path, script_in_process):
    missing = tmp_path / "nowhere" / "Train_data.csv"
    result = script_in_process("sft.py", "--config", make_recipe(tiny_llama, train_file=str(missing)))
    assert_one_error_line(result, str(missing), "not found")


def test_missing_column_names_found_and_accepted_columns(make_recipe, tiny_llama, tmp_path, script_in_process):
    bad = tmp_path / "bad.csv"
    bad.write_text("Proverbs,Meaning\nمثل,معنى\n", encoding="utf-8")
    result = script_in_process("sft.py", "--config", make_recipe(tiny_llama, train_file=str(bad)))
    assert_one_error_line(result, str(bad), "'explanation'", "Meaning", "reference_explanation")


def test_unknown_recipe_key(make_recipe, tiny_llama, script_in_process):
    recipe = make_recipe(tiny_llama, lora_rank=8)
    result = script_in_process("sft.py", "--config", recipe)
    assert_one_error_line(result, str(recipe), "lora_rank")


def test_missing_recipe_file(script_in_process):
    result = script_in_process("sft.py", "--config", "recipes/no_such_recipe.yaml")
    assert_one_error_line(result, "recipes/no_such_recipe.yaml", "not found")


def test_missing_local_model_directory(make_recipe, tmp_path, script_in_process):
    result = script_in_process("sft.py", "--config", make_recipe(tmp_path / "no-model"))
    assert_one_error_line(result, "no-model", "no such directory")


def test_remote_code_without_a_pinned_revision(tmp_path, script_in_process):
    recipe = write_recipe(
        tmp_path / "remote.yaml",
        model_name_or_path="inceptionai/Jais-family-256m",
        trust_remote_code=True,
        task="medical_qa",
        train_file=str(SAMPLE_FILES["medical_qa"]),
        use_cpu=True,
        bf16=False,
    )
    result = script_in_process("sft.py", "--config", recipe)
    assert_one_error_line(result, "inceptionai/Jais-family-256m", "model_revision")


def test_help_lists_recipe_fields(script_in_process):
    result = script_in_process("sft.py", "--help")
    assert result.returncode == 0
    for field in ("--train_file", "--prompt_template", "--inspect", "--lora_r", "--learning_rate"):
        assert field in result.stdout


def test_hub_model_that_cannot_be_reached_offline(make_recipe, script_in_process):
    recipe = make_recipe("no-such-org/no-such-model")
    result = script_in_process("sft.py", "--config", recipe)
    assert_one_error_line(result, "no-such-org/no-such-model", "cannot load the tokenizer")


def test_a_yaml_syntax_error_names_its_line_and_column(tmp_path, script_in_process):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        'model_name_or_path: m\nprompt_template: "an unclosed quote\nlearning_rate: 1\n', encoding="utf-8"
    )
    result = script_in_process("sft.py", "--config", recipe)
    assert_one_error_line(result, str(recipe), "not valid YAML at line 2, column 18", "quoted scalar", "quotes")


def test_a_local_model_path_that_does_not_exist_is_not_looked_up_on_the_hub(make_recipe, script_in_process, tmp_path):
    (tmp_path / "models").mkdir()  # a mistyped name in a folder of models (`models/` after make demo)
    result = script_in_process("sft.py", "--config", make_recipe("models/no-such-tiny-model"), cwd=tmp_path)
    assert_one_error_line(result, "models/no-such-tiny-model: no such directory")
    assert "huggingface.co" not in result.stderr


def test_evaluating_before_training_says_to_train_first(tiny_llama, make_recipe, script_in_process):
    recipe = make_recipe(tiny_llama, test_file=str(SAMPLE_FILES["proverbs"]))
    result = script_in_process("generate.py", "--config", recipe)
    assert_one_error_line(result, "does not exist: train it first with make train RECIPE=recipe")


def test_missing_project_data_says_where_it_comes_from(tiny_llama, make_recipe, script_in_process):
    recipe = make_recipe(tiny_llama, train_file="data/no_such_dataset/train.csv")  # as data/ahqad/ before its download
    result = script_in_process("sft.py", "--config", recipe)
    message = "data/no_such_dataset/train.csv: file not found; data/README.md says where this data comes from"
    assert_one_error_line(result, message)


def test_an_unknown_flag_is_one_line_for_every_script(script_in_process):
    required = {  # what each script needs before it looks at the rest
        "sft.py": ("--config", "recipes/demo.yaml"),
        "merge_adapter.py": ("--adapter_dir", "a", "--out", "b"),
        "make_tiny_model.py": ("--config", "recipes/demo.yaml"),
        "sweep.py": ("--sweep", "demo"),
    }
    scripts = ["sft.py", "generate.py", "score.py", "compare.py", "general.py", "merge_adapter.py"]
    for script in [*scripts, "make_tiny_model.py", "sweep.py"]:
        result = script_in_process(script, *required.get(script, ()), "--no_such_flag", "1")
        assert_one_error_line(result, "--no_such_flag")
        assert "usage:" not in result.stderr, script


# What each refusal that needs no model says (bench.refusals' cases, by the words their names start with).
REFUSED_WITH = {"recipe typo": "learning_rat", "renamed column": "no column for 'proverb'", "never trained (eval)":
                "does not exist: train it first", "never trained": "no finished training", "port in use": "is in use",
                "GPU recipe": "needs a GPU"}  # fmt: skip


# A process started with this as its sitecustomize finds torch, transformers and TRL (the recipe check reads their
# sources) but cannot import them.
BLOCK_IMPORTS = """
import importlib.abc, importlib.machinery, sys

class Refuse(importlib.abc.Loader):
    def create_module(self, spec):
        return None

    def exec_module(self, module):
        raise ImportError(module.__name__ + " imported before the refusal")

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        spec = None
        if name.split(".")[0] in ("torch", "transformers", "trl"):
            spec = importlib.machinery.PathFinder.find_spec(name, path)
            if spec is not None:
                spec.loader = Refuse()
        return spec

sys.meta_path.insert(0, Block())
"""


def test_every_refusal_that_needs_no_model_comes_before_torch_transformers_or_trl_is_imported(tmp_path):
    """The console program as make runs it, each stage in its own process, with torch, transformers and TRL made
    unimportable: every refusal is still its one line (the seconds it takes are `make bench`'s figure)."""
    import os

    from arabic_sft.bench.refusals import refusal_cases, refuse

    blocked = tmp_path / "blocked"
    blocked.mkdir()
    (blocked / "sitecustomize.py").write_text(BLOCK_IMPORTS, encoding="utf-8")  # found, not importable
    environment = {**os.environ, "PYTHONPATH": str(blocked)}
    (tmp_path / "work").mkdir()
    with refusal_cases(tmp_path / "work") as cases:
        assert len(cases) >= 10
        for case, arguments in cases.items():
            words = next(words for start, words in REFUSED_WITH.items() if case.startswith(start))
            assert_one_error_line(refuse(arguments, environment), words)
