"""What persists between runs: the data memory, the champion registry, the candidate's run, the feature cache."""
