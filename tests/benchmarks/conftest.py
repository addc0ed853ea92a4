"""The benchmarks import their siblings (``host``, ``random_models``, ...) as scripts do: by the
benchmarks folder on ``sys.path``."""

from __future__ import annotations

import sys
from pathlib import Path

BENCHMARKS = str(Path(__file__).resolve().parents[2] / "benchmarks")
if BENCHMARKS not in sys.path:
    sys.path.insert(0, BENCHMARKS)
