"""Prompts and masks: the one prompt builder used by training, generation and evaluation (builder), what training
masks and trains (masks), and examples longer than max_length (truncation)."""
