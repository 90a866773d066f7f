"""`python -m arabic_sft STAGE RECIPE ...`: the console program (arabic_sft.cli)."""

from arabic_sft.cli import entry_point


entry_point()
