"""LLM judges: a rubric that is data (rubric), strict reading of what a judge answers (verdicts)."""
