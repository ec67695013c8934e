"""The core: the pure, clocked patch engine, its events and the standard tone tables.

Nothing here does I/O or imports anything above it; every other room builds on these.
"""
