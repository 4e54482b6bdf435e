"""pytest plugin for jobsched (registered through the ``pytest11`` entry point)."""
