"""Concerto's benchmark: the harness (bench) and the floor it is measured against (floor)."""
