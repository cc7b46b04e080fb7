"""The rules of docs/architecture.md: module sizes, the import layers, no import cycles.

The import graph is read from the source (every ``import`` and ``from ... import`` of the
package, at module level or inside functions), so a lazy import counts as much as any.
"""

import ast
import inspect
from pathlib import Path

import pytest

import sklearn_birdaudio
from sklearn_birdaudio import AttentionCNNClassifier

PACKAGE = Path(sklearn_birdaudio.__file__).parent
MAX_LINES = 450
# Modules allowed over MAX_LINES, and why.
LONGER = {
    "classifier": "the estimator's numpydoc docstring (130 lines) and the skorch hooks of one net",
    "restorable": "the declared domain of every parameter a model file may set",
    "detection": "detect() and window_scores(): argument checks and two long docstrings",
    "metrics": "mAP, padded cmAP, F1 and top-1 with their scorers, each a few lines",
    "distillation": "one estimator whose docstrings explain its windows, targets, folds and cache",
}
# Each module's layer; a module imports only from its own layer or below. Within a
# layer, the graph must still be acyclic.
LAYERS = {
    0: ["_validation", "_deprecation", "extras", "composition", "spec", "devices", "log_mel",
        "losses", "targets", "modules", "augment", "metrics", "text_cells",
        "spectrogram_inputs"],
    1: ["audio_bounds", "sound_file_reads", "audio_stream", "audio", "windows", "execution"],
    2: ["feature_inputs", "feature_batches", "feature_cache", "features", "birdnet_model",
        "embeddings", "inference", "checkpoints", "training"],
    3: ["classifier", "linear", "ensemble", "accelerated"],
    4: ["scoring", "distributed", "detections", "table_formats", "table_writers",
        "table_readers", "table_files", "tables", "detection", "runs"],
    5: ["restorable", "fitted_state", "model_description", "persistence", "calibration",
        "plotting", "review_page", "review", "reviewed", "recipes", "student_training",
        "distillation", "datasets"],
    6: ["cli"],
}  # fmt: skip


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(part for part in parts if part != "__init__")


def top(name: str) -> str:
    """The first-level module a dotted name belongs to (``cli.train`` -> ``cli``)."""
    return name.split(".")[0]


def imports_of(path: Path) -> set[str]:
    """Package modules ``path`` imports (dotted, relative to the package)."""
    name = module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - node.level + 1]
            target = [*base, *(node.module.split(".") if node.module else [])]
            if node.module is None:
                found |= {".".join([*target, alias.name]) for alias in node.names}
            else:
                found.add(".".join(target))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
            "sklearn_birdaudio."
        ):
            found.add(node.module.removeprefix("sklearn_birdaudio."))
        elif (  # import_module(".name", ...): an import all the same
            isinstance(node, ast.Call)
            and getattr(node.func, "id", getattr(node.func, "attr", None)) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and str(node.args[0].value).startswith(".")
        ):
            found.add(".".join([*package, str(node.args[0].value).lstrip(".")]))
    return {target for target in found if target and target != "__version__"}


SOURCES = sorted(PACKAGE.rglob("*.py"))
GRAPH = {module_name(path): imports_of(path) for path in SOURCES}


def test_every_module_is_short_or_says_why():
    sizes = {module_name(path): len(path.read_text().splitlines()) for path in SOURCES}
    too_long = {name: n for name, n in sizes.items() if n > MAX_LINES and name not in LONGER}
    assert not too_long, f"modules over {MAX_LINES} lines without a reason in LONGER: {too_long}"
    stale = {name for name in LONGER if sizes.get(name, 0) <= MAX_LINES}
    assert not stale, f"LONGER lists modules that are short now: {stale}"


def test_every_module_has_a_layer():
    placed = {name for names in LAYERS.values() for name in names}
    modules = {top(name) for name in GRAPH if name}
    assert modules - placed == set(), "modules missing from LAYERS (and the architecture page)"
    assert placed - modules == set(), "LAYERS names modules that do not exist"


def test_imports_go_down_the_layers():
    layer = {name: level for level, names in LAYERS.items() for name in names}
    upward = sorted(
        f"{source} ({layer[top(source)]}) imports {target} ({layer[top(target)]})"
        for source, targets in GRAPH.items()
        if source
        for target in targets
        if top(target) != top(source) and layer[top(target)] > layer[top(source)]
    )
    assert not upward, "imports against the layers:\n" + "\n".join(upward)


def test_there_is_no_import_cycle():
    """Between first-level modules (a package counts as one), every import included."""
    edges = {}
    for source, targets in GRAPH.items():
        if source:
            edges.setdefault(top(source), set()).update(
                top(target) for target in targets if top(target) != top(source)
            )
    visiting, done, cycles = [], set(), []

    def visit(node):
        if node in visiting:
            cycles.append([*visiting[visiting.index(node) :], node])
            return
        if node in done:
            return
        visiting.append(node)
        for target in sorted(edges.get(node, ())):
            visit(target)
        visiting.pop()
        done.add(node)

    for node in sorted(edges):
        visit(node)
    assert not cycles, f"import cycles: {[' -> '.join(cycle) for cycle in cycles]}"


def test_the_architecture_page_lists_every_module():
    page = (PACKAGE.parent / "docs" / "architecture.md").read_text()
    missing = [name for names in LAYERS.values() for name in names if f"`{name}`" not in page]
    assert not missing, f"docs/architecture.md does not place {missing}"


@pytest.mark.parametrize("setting", ["sample_rate", "hop_length"])
def test_the_classifier_keeps_no_copy_of_the_front_ends_framing(setting):
    assert setting not in inspect.signature(AttentionCNNClassifier).parameters
