"""Simulated time and the simulated site: `crosspatch simulate`, scenario files and the demo."""
