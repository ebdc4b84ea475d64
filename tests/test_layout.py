"""The package reads as a map of the pipeline: imports point one way (down the pipeline), no
module imports another that imports it back (module level or lazy), and modules and functions
stay short. Built from the source with ``ast``, so it holds for imports inside functions too."""

from __future__ import annotations

import ast
from pathlib import Path

NAS = Path(__file__).resolve().parents[1] / "nas"

# The pipeline, bottom to top: a module may import from its own layer and the layers below.
LAYERS = {
    "nas.errors": 0,
    "nas.vocab": 0,
    "nas.lazy": 0,
    "nas.device": 0,
    "nas.settings": 0,
    "nas.documents": 0,
    "nas.space": 1,
    "nas.models": 2,
    "nas.measure": 3,
    "nas.train": 4,
    "nas.pretrain": 4,
    "nas.campaign": 5,
    "nas.report": 6,
    "nas.bench": 7,
    "nas.surrogate": 7,
    "nas.claims": 7,  # runs campaigns and reads their reports: above campaign and report
    "nas.cli": 8,
    "nas": 9,  # the package facade (lazy re-exports of the public API)
}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
# Longer than the limits where splitting would read worse (named in the closing note of issue 14).
LONG_FUNCTIONS: dict[str, str] = {}
LONG_MODULES: dict[str, str] = {}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(NAS.rglob("*.py")):
        parts = list(path.relative_to(NAS.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _lazy_targets(tree: ast.Module) -> list[str]:
    """Module names in a ``_LAZY = {name: module}`` dict (``nas.lazy.lazy_exports``)."""
    out = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "_LAZY" for t in node.targets
        ):
            out += [v.value for v in node.value.values if isinstance(v, ast.Constant)]
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: list[str] = _lazy_targets(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets += [
                f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names
            ]
    found = set()
    for t in targets:
        while t and t not in modules:  # `import nas.x.y` of a name inside a module
            t = t.rpartition(".")[0]
        if t and t != name:
            found.add(t)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _layer(module: str) -> int:
    while module not in LAYERS:
        module = module.rpartition(".")[0]
    return LAYERS[module]


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_graph_sees_lazy_and_function_level_imports():
    graph = _graph()
    assert "nas.models.build" in graph["nas"]  # through _LAZY
    assert "nas.campaign" in graph["nas.cli.campaigns"]  # inside a function body
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle():
    cycle = _cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_imports_point_down_the_pipeline():
    upward = [
        f"{src} (layer {_layer(src)}) imports {dst} (layer {_layer(dst)})"
        for src, dsts in _graph().items()
        for dst in sorted(dsts)
        if _layer(dst) > _layer(src)
    ]
    assert not upward, "\n".join(upward)


def test_modules_and_functions_stay_short():
    too_long = []
    for name, path in _modules().items():
        text = path.read_text()
        lines = len(text.splitlines())
        if lines > MAX_MODULE_LINES and name not in LONG_MODULES:
            too_long.append(f"{name}: {lines} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                key = f"{name}.{node.name}"
                if n > MAX_FUNCTION_LINES and key not in LONG_FUNCTIONS:
                    too_long.append(f"{key}: {n} lines")
    assert not too_long, "\n".join(too_long)


def test_each_vocabulary_is_defined_once():
    names = ("MIXERS", "BLOCKS", "MACROS", "NORMS", "COST_COLUMNS", "STATUSES", "TRAIN_RULES",
             "DATA_RULES", "DATASETS", "SAMPLERS", "STAGE_FIELDS")  # fmt: skip
    defined: dict[str, list[str]] = {n: [] for n in names}
    for name, path in _modules().items():
        for node in ast.parse(path.read_text()).body:
            targets = (
                node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
            )
            for t in targets:
                if isinstance(t, ast.Name) and t.id in defined:
                    defined[t.id].append(name)
    twice = {k: v for k, v in defined.items() if len(v) != 1}
    assert not twice, twice
    resolve = [
        name for name, path in _modules().items() if "def resolve_device" in path.read_text()
    ]
    assert resolve == ["nas.device"]
