"""The quick recipe check (no TRL imported) knows exactly the fields TRL's parser knows, reads the project's recipes
to the values load_recipe gives them, and refuses what load_recipe refuses, in one line, before any stage starts."""

import subprocess
import sys

import pytest
from helpers import ROOT, write_recipe

from arabic_sft.named import PROJECT_RECIPES
from arabic_sft.recipe import check_recipe, load_recipe, make_parser
from arabic_sft.recipe.check import known_fields
from arabic_sft.runtime.errors import UserError


def test_the_fields_read_from_the_libraries_sources_are_the_parsers():
    assert set(known_fields()) == {action.dest for action in make_parser()._actions} - {"help"}


@pytest.mark.parametrize("name", PROJECT_RECIPES)
def test_a_project_recipe_checks_to_the_values_load_recipe_gives_it(name):
    checked = check_recipe(ROOT / "recipes" / f"{name}.yaml")
    loaded = vars(load_recipe(["--config", str(ROOT / "recipes" / f"{name}.yaml")]).fields)
    assert {key: loaded[key] for key in checked} == checked


def test_checking_a_recipe_imports_neither_trl_nor_torch():
    probe = (
        "import sys; from arabic_sft.recipe import check_recipe; check_recipe(sys.argv[1]); "
        "print(sorted(name for name in ('trl', 'transformers', 'torch', 'pandas') if name in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, "recipes/demo.yaml"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "fields, words",
    [
        ({"lerning_rate": 1e-3}, ["unknown recipe key(s): lerning_rate (did you mean learning_rate?)"]),
        ({"num_train_epochs": "two"}, ["argument --num_train_epochs: invalid float value: 'two'"]),
        ({"max_steps": "three"}, ["argument --max_steps: invalid int value: 'three'"]),
        ({"use_peft": "maybe"}, ["argument --use_peft: invalid bool value: 'maybe'"]),
        ({"task": "no_such_task"}, ["no_such_task"]),
        ({"env": ["A=1"]}, ["env: must be a mapping"]),
    ],
)
def test_what_load_recipe_refuses_is_refused_here_in_one_line(tmp_path, fields, words):
    recipe = write_recipe(tmp_path / "bad.yaml", model_name_or_path="m", train_file="t.csv", **fields)
    with pytest.raises(UserError) as checked:
        check_recipe(recipe)
    assert all(word in str(checked.value) for word in words)
    with pytest.raises(UserError):
        load_recipe(["--config", str(recipe)])


def test_values_the_parser_converts_are_taken(tmp_path):
    recipe = write_recipe(tmp_path / "ok.yaml", model_name_or_path="m", train_file="t.csv", learning_rate="5e-3",
                          use_peft="true", max_steps=3, num_train_epochs=2)  # fmt: skip
    checked = check_recipe(recipe)
    assert (checked["learning_rate"], checked["use_peft"], checked["max_steps"]) == (5e-3, True, 3)
    assert checked["num_train_epochs"] == 2.0 and checked["logging_first_step"] is True  # the project's default
    loaded = load_recipe(["--config", str(recipe)]).fields
    assert (loaded.learning_rate, loaded.use_peft, loaded.max_steps) == (5e-3, True, 3)


def test_the_console_program_refuses_a_mistyped_recipe_before_any_stage(tmp_path, capsys):
    from arabic_sft.cli import main

    recipe = write_recipe(tmp_path / "bad.yaml", model_name_or_path="m", train_file="t.csv", lerning_rate=1e-3)
    with pytest.raises(UserError, match=r"unknown recipe key\(s\): lerning_rate"):
        main(["train", str(recipe)])
    assert "+ " not in capsys.readouterr().err  # no stage was started


def test_the_project_recipes_are_the_ones_it_ships():
    shipped = {path.stem for path in (ROOT / "recipes").glob("*.yaml")}
    assert set(PROJECT_RECIPES) <= shipped  # a user's own recipe there is not tested (it may need data we lack)
