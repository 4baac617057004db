"""`snn2hw bench`: the reference workloads of BENCHMARKS.md, measured the same way every time."""
