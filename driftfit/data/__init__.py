"""Data services every modality and step shares: splits and hashes, labels, the data contract and its Great
Expectations suites, and the validation report."""
