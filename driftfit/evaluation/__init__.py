"""Scoring models and judging candidates: metrics every modality shares, and the promotion gate's statistics."""
