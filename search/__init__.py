"""Optuna search of student width and depth under a size or latency budget (not built yet; see README)."""
