"""``python -m jobsched``: the ``jobsched`` command."""

from __future__ import annotations

from jobsched.cli import main

if __name__ == "__main__":
    main()
