"""The fault-injection suite: real ``jobsched run-due`` processes, real databases, real faults."""
