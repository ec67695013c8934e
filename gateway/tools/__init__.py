"""Technician tools that run without the daemon: radio probe/tune/key/watch, audio levels and
tone, unkey-all.
"""
