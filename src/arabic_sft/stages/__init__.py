"""Each stage of a run as a function the scripts and the console program call: generate, score, judge, general,
compare, report, merge, bench (training: `training.run.train`, with scripts/sft.py as its command line)."""
