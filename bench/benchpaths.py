"""Where the benchmarks find this checkout and the benchmark corpus.

Importing it puts the checkout first on ``sys.path``, so a script run as
``python bench/x.py`` times this tree's charrnn, not an installed one.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHAKESPEARE = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"  # not in the repo
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
