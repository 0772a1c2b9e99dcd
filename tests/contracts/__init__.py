"""Contract suites every implementation of a protocol runs (subclass the *Contract classes)."""
