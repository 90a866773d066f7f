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
    assert_one_error_line(result, "no-model", "model directory not found")


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
