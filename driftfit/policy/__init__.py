"""The strategy policy: the hand rules (rules.py), learned rules (learned.py) and probe mode (probe.py)."""
