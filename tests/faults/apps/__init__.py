"""Handler modules that ``jobsched run-due --app faults.apps.<name>`` imports in the fault suite."""
