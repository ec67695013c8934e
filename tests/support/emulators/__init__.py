"""Radio emulators for the tests: each speaks a protocol's real bytes on the far side of a pty,
written from the protocol notes independently of the driver it tests."""
