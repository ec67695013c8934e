"""Helpers the tests share: environments, emulators, the daemon harness and fakes.

Test modules import from here, never from one another; bench/ imports from here as well
(run from the repository root as `python -m bench.NAME`, so `tests.support` is a package)."""
