"""The package's shape: stages that import only downwards, no import circles, and a torch
line kept by structure (every module outside the torch stages imports without torch).

Imports are read from the source (module level, inside functions and under
TYPE_CHECKING alike), so a lazy import cannot hide an upward arrow or a circle.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import charrnn

PACKAGE = Path(charrnn.__file__).parent

# Lowest first: a module may import from its own stage and the stages before it.
STAGES = [
    {"charrnn", "errors"},
    {"config", "files", "escapes", "safetext", "threads"},
    {"data"},  # text -> vocabulary -> ids -> batches
    {"runs"},  # checkpoint format, run folders, lock, metrics log
    {"model"},  # the torch model and its numpy twin
    {"generate"},  # decoding controls and the sampler
    {"score"},  # measures, which text eval scores, loss, dynamic eval
    {"novelty"},  # copies of the training text
    {"train"},  # the train command and the loop
    {"inspect"},  # traces, units, run info, pages
    {"export"},  # the web page and engine, ONNX, the Hugging Face folder
    {"serve"},  # the HTTP server
    {"api"},  # the Python API
    {"cli", "__main__"},  # the command line
]
# Modules allowed to import torch at module level; every other one must import without it.
TORCH = {"model.network", "model.device", "score.loss", "score.adapt", "score.evaluate",
         "score.gradients", "score.context", "score.flow", "train.loop", "train.checkpoints",
         "train.probe", "train.command", "train.validation"}


def _modules() -> dict[str, Path]:
    """'data.cache' -> its file, for every module of the package ('charrnn' for __init__)."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts) or "charrnn"] = path
    return out


MODULES = _modules()


def _imports(path: Path) -> set[str]:
    """The charrnn modules a file imports, anywhere in it (names relative to the package)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
        else:
            continue
        for name in names:
            if name == "charrnn" or name.startswith("charrnn."):
                rel = name.removeprefix("charrnn").lstrip(".") or "charrnn"
                if rel in MODULES:
                    found.add(rel)
    # "from charrnn.data import cache" names both the package and its module: keep the module
    return {m for m in found if not any(o.startswith(m + ".") for o in found)}


GRAPH = {m: _imports(p) - {m} for m, p in MODULES.items()}


def _stage(module: str) -> int:
    head = module.split(".")[0]
    return next(i for i, names in enumerate(STAGES) if head in names)


def test_every_module_belongs_to_a_stage():
    for module in MODULES:
        assert any(module.split(".")[0] in s for s in STAGES), f"{module}: add it to STAGES"


def test_no_import_goes_to_a_higher_stage():
    upward = [f"{m} -> {t}" for m, targets in GRAPH.items() for t in targets
              if _stage(t) > _stage(m)]
    assert upward == []


def test_no_import_circles():
    """Depth-first search for a back edge in the module graph."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for t in sorted(GRAPH[m]):
            if state.get(t) == 1:
                return path[path.index(t):] + [t]
            if t not in state and (found := visit(t)):
                return found
        state[m] = 2
        path.pop()
        return None

    for m in sorted(GRAPH):
        if m not in state and (circle := visit(m)):
            pytest.fail("import circle: " + " -> ".join(circle))


def test_the_torch_free_stages_never_reach_a_torch_module():
    """Below train, a module that needs no torch imports no module that does, not even
    lazily: the numpy side stands on its own."""
    free = {m for m in MODULES if m not in TORCH and _stage(m) < _stage("train.loop")}
    reach = [f"{m} -> {t}" for m in free for t in GRAPH[m] if t in TORCH]
    assert reach == []


def test_every_module_outside_the_torch_stages_imports_without_torch():
    names = sorted(f"charrnn.{m}" if m != "charrnn" else m for m in MODULES
                   if m not in TORCH and m not in ("__main__",))
    code = ("import importlib, sys\n"
            f"for name in {names!r}:\n"
            "    importlib.import_module(name)\n"
            "    assert 'torch' not in sys.modules, name\n"
            "print('ok', len(sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("ok"), r.stderr


def test_no_module_is_over_about_400_lines():
    long = {m: n for m, p in MODULES.items()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 420}
    assert long == {}
