"""Scoring: metrics correct for Arabic (metrics), reading predictions (predictions), the metrics table with
published figures (report), and the comparison of runs with bootstrap intervals and paired tests (compare)."""
