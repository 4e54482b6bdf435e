"""Integration tests: jobsched against real SQLite files and a real MariaDB server."""
