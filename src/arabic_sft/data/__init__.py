"""Data, the first stage of a run: formats (files, saved datasets, the Hub), columns (the recipe's fields of a row),
splits (files or seeded fractions), arabic (the one Arabic normalization), cleaning (repeated, near-duplicate and
contaminated rows) and few-shot examples."""
