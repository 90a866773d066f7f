"""One self-contained HTML report per recipe, from the runs' own files."""
