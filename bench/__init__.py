"""Benchmarks that print tables (README gives their figures).

Run each from the repository root as a module, `.venv/bin/python -m bench.NAME`: so `bench` and
`tests` are packages, and a benchmark uses the test environments and radio emulators of
`tests.support` without editing sys.path."""
