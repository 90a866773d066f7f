"""The benchmarks (make bench): the seed way against ours on a CPU or GPU (`cpu`), the data check at scale
(`data_check`) and evaluation at scale (`evaluation`); figures in results/bench/, docs/benchmarks.md says them."""
