"""Data, the first stage of a run: formats (files, saved datasets, the Hub), columns (the recipe's fields of a row),
splits (files or seeded fractions), leakage (rows repeated across splits) and few-shot examples."""
