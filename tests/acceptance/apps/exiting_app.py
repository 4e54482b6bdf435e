"""An app module that ends the process while being imported, as a failed settings check would."""

from __future__ import annotations

import sys

sys.exit(3)
