"""The real proverbs are put in data/ from a shared copy or GitHub, each file checked; without them the demo runs on
the shipped sample rows and says so (the whole offline demo: README's walkthrough, run by hand and in CI's clone)."""

import hashlib

import pytest
from helpers import ROOT

from arabic_sft import cli
from arabic_sft.data import fetch
from arabic_sft.runtime.errors import UserError


def shared_copy(folder, names, broken: str | None = None):
    (folder / "yemeni_proverbs").mkdir(parents=True)
    sums = {}
    for name in names:
        text = f"Proverbs,Explanation\n{name},x\n"
        (folder / "yemeni_proverbs" / name).write_text(text + ("changed" if name == broken else ""), encoding="utf-8")
        sums[name] = hashlib.sha256(text.encode()).hexdigest()
    return sums


def test_a_shared_copy_is_linked_and_checked(tmp_path, monkeypatch):
    sums = shared_copy(tmp_path / "shared", ["Train_data.csv", "Test_data.csv"])
    monkeypatch.setattr(fetch, "expected_sums", lambda: sums)
    written = fetch.run(tmp_path / "shared", tmp_path / "data")
    assert [path.name for path in written] == ["Train_data.csv", "Test_data.csv"]
    assert all(path.is_symlink() and fetch.sha256(path) == sums[path.name] for path in written)


def test_a_file_with_another_sha256_never_takes_its_place(tmp_path, monkeypatch):
    sums = shared_copy(tmp_path / "shared", ["Train_data.csv"], broken="Train_data.csv")
    monkeypatch.setattr(fetch, "expected_sums", lambda: sums)
    with pytest.raises(UserError, match="Train_data.csv: sha256 .* expected"):
        fetch.run(tmp_path / "shared", tmp_path / "data")
    assert list((tmp_path / "data").iterdir()) == []  # neither the file nor its partial copy


def test_without_a_shared_copy_or_the_network_the_demo_runs_on_the_samples(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(fetch, "URL", "http://127.0.0.1:9")  # nothing listens on port 9: unreachable by construction
    monkeypatch.setattr(fetch, "FOLDER", tmp_path / "data")
    monkeypatch.setenv("SHARED_DATA", str(tmp_path / "none"))
    with pytest.raises(UserError, match="cannot be downloaded from GitHub"):
        fetch.run()
    assert cli.demo_recipe() == "demo_offline"
    assert "the demo runs on the 12 sample rows shipped in data/samples/" in capsys.readouterr().err
    assert (ROOT / "recipes" / "demo_offline.yaml").is_file()
