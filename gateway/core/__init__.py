"""The core: the pure, clocked patch engine and its events, and what every room shares: the
timing facts, the user-error base class, the standard tone tables and the log line format (the
daemon and its publisher process alike).

Nothing here imports anything above it; the engine itself does no I/O.
"""
