"""Acceptance tests: the ``jobsched`` command run as real processes."""
