"""Each stage of a run as a function the scripts and the console program call (training: `training.run.train`, with
scripts/sft.py as its command line); no stage imports another, the benchmarks live in `bench/`."""
