"""Sluice's benchmark: baselines and sluice's pipeline timed side by side on the same data."""
