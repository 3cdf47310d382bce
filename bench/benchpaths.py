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


def machine() -> str:
    """The CPU (model name, count, bf16 instructions) and the load average now."""
    import os
    import subprocess

    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    flags = fields.get("Flags", "")
    isa = ("AMX" if "amx_bf16" in flags else "AVX-512 BF16" if "avx512_bf16" in flags
           else "AVX2" if "avx2" in flags else "?")
    return (f"{fields.get('Model name', '?').strip()}, {os.cpu_count()} CPUs ({isa}), "
            f"load average {os.getloadavg()[0]:.2f} at start")
