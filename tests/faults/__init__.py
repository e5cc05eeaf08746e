"""Fault injection: local runs taken through every failure, verified exact."""
