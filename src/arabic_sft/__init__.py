"""Recipes to fine-tune Arabic LLMs on question/answer data with TRL, and score them honestly."""

__version__ = "0.1.0"
