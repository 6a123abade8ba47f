"""`python -m benchmarks` (`nox -s bench`): handler throughput, synth scaling and no-op
rebuilds, each measured side by side in one run and printed as ratios."""
