"""The package's layering: a core that needs no trainer, no import cycles, task-type behaviour only in tasks.py."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from hf_mtl.tasks import TASK_TYPES
from tests.multiprocess import TIMEOUT

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "hf_mtl"
CORE = {"configuration_mtl", "tasks", "heads", "losses", "backbones", "modeling_mtl", "safety", "version"}
TRAINING = ("trainer", "training_args", "balancing", "nonfinite", "checkpointing", "transfer", "sharding")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def _imports(path: Path, source: str | None = None) -> set[str]:
    """Package modules that ``path`` (or ``source`` as if it were that file) imports anywhere (module level or inside
    functions; not under TYPE_CHECKING)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "hf_mtl")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] == "hf_mtl":
                for alias in node.names:  # `from . import x` imports the submodule x when there is one
                    sub = f"{target}.{alias.name}"
                    found.add(sub if sub in MODULES else target)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text() if source is None else source, filename=str(path)))
    found.discard(name)
    return found


GRAPH = {name: _imports(path) for name, path in MODULES.items()}


def test_core_imports_no_upper_layer():
    problems = []
    for name, imported in GRAPH.items():
        if name.removeprefix("hf_mtl.") in CORE:
            upper = sorted(m for m in imported if m.removeprefix("hf_mtl.") not in CORE)
            if upper:
                problems.append(f"{name} imports {upper}")
    assert problems == []


# The layer table of /work/shared/DESIGN.md, by the first name under hf_mtl (a module or a subpackage); an arrow only
# points down. Layers not listed here are checked only by the core rule above.
LAYERS = {
    "core": CORE,
    "data": {"data", "preprocessing"},
    "evaluation": {"metrics", "modelcard", "chart"},
    "training": set(TRAINING),
    "advice": {"advise"},
}
MAY_IMPORT = {"advice": {"core", "data", "evaluation", "training"}}
IMPORTED_ONLY_BY = {"advice": {"scripts", "cli"}}


def _layer(module: str) -> str | None:
    top = module.removeprefix("hf_mtl.").split(".")[0]
    return next((layer for layer, tops in LAYERS.items() if top in tops), None)


def _layer_problems(graph: dict[str, set[str]]) -> list[str]:
    problems = []
    for name, imported in graph.items():
        layer = _layer(name)
        if layer in MAY_IMPORT:
            # an unlisted module (scripts, cli, hub, the lazy package root) counts as a layer it may not import
            bad = sorted(m for m in imported if _layer(m) != layer and _layer(m) not in MAY_IMPORT[layer])
            if bad:
                problems.append(f"{name} ({layer}) imports {bad}")
        top = name.removeprefix("hf_mtl.").split(".")[0]
        for target, allowed in IMPORTED_ONLY_BY.items():
            if layer != target and top not in allowed:
                bad = sorted(m for m in imported if _layer(m) == target)
                if bad:
                    problems.append(f"{name} imports {bad} (only {sorted(allowed)} may import the {target} layer)")
    return problems


def test_layers_import_only_what_the_table_allows():
    assert _layer_problems(GRAPH) == []


def test_the_layer_check_catches_advice_importing_scripts():
    """The import issue 19 landed with (advice reaching into the recipe handling, inside a function) is caught, and
    so is a lower layer importing advice."""
    path = MODULES["hf_mtl.advise.advisor"]
    old = "def advise(recipe):\n    from ..scripts.arguments import parse_recipe\n    return parse_recipe(recipe)\n"
    graph = {**GRAPH, "hf_mtl.advise.advisor": _imports(path, old)}
    assert _layer_problems(graph) == ["hf_mtl.advise.advisor (advice) imports ['hf_mtl.scripts.arguments']"]
    trainer = MODULES["hf_mtl.trainer"]
    graph = {**GRAPH, "hf_mtl.trainer": _imports(trainer, "from .advise import logme\n")}
    assert _layer_problems(graph) == [
        "hf_mtl.trainer imports ['hf_mtl.advise.logme'] (only ['cli', 'scripts'] may import the advice layer)"
    ]


CYCLES_BEING_SPLIT: list[list[str]] = []


def test_no_import_cycles():
    """Tarjan's strongly connected components of the import graph (function-level imports included)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in GRAPH.get(node, ()):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in GRAPH:
        if node not in index:
            connect(node)
    assert [c for c in cycles if c not in CYCLES_BEING_SPLIT] == []


TYPE_NAMES = set(TASK_TYPES)


def _names_a_type(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return node.value in TYPE_NAMES
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return any(_names_a_type(e) for e in node.elts)
    return isinstance(node, ast.Attribute) and node.attr == "type"  # spec.type == ... / in ...


def test_nothing_outside_tasks_compares_a_task_type_string():
    problems = []
    for name, path in MODULES.items():
        if name == "hf_mtl.tasks":
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare) and any(_names_a_type(n) for n in [node.left, *node.comparators]):
                problems.append(f"{path.relative_to(REPO)}:{node.lineno}: {ast.unparse(node)}")
            if isinstance(node, ast.Match) and _names_a_type(node.subject):
                problems.append(f"{path.relative_to(REPO)}:{node.lineno}: match on a task type")
    assert problems == []


def _fresh_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=TIMEOUT,
        env={**__import__("os").environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)},
    )


def test_import_hf_mtl_does_not_import_the_trainer():
    done = _fresh_python(
        "import sys, hf_mtl; from hf_mtl import MultiTaskModel; assert 'hf_mtl.trainer' not in sys.modules\n"
        f"print([m for m in sys.modules if m.removeprefix('hf_mtl.') in {TRAINING!r}])"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_public_names_stay_reachable():
    done = _fresh_python(
        "import sys, hf_mtl\n"
        "missing = [n for n in hf_mtl.__all__ if n not in dir(hf_mtl)]\n"
        "values = {n: getattr(hf_mtl, n) for n in hf_mtl.__all__}\n"
        "from hf_mtl import MultiTaskTrainer, MultiTaskTrainingArguments\n"
        "print(missing, len(values), 'hf_mtl.trainer' in sys.modules, hf_mtl.__version__)"
    )
    assert done.returncode == 0, done.stderr
    missing, count, trainer_loaded, version = done.stdout.split()
    assert missing == "[]" and int(count) >= 32 and trainer_loaded == "True" and version


def test_saved_model_and_local_metrics_load_without_the_trainer(tmp_path):
    from tests.tiny_models import MIXED_TASKS, images, timm_model

    tasks = [*MIXED_TASKS, {"name": "grade", "type": "ordinal", "labels": ["low", "mid", "high"]}]
    model = timm_model(tasks=tasks).eval()
    model.save_pretrained(tmp_path / "model")
    pixels = images(2)
    import torch

    torch.save(pixels, tmp_path / "pixels.pt")
    expected = {k: v.tolist() for k, v in model(pixel_values=pixels).logits.items()}
    modules = sorted({kind.metric_module for kind in TASK_TYPES.values()})
    done = _fresh_python(
        "import json, sys, torch, evaluate\n"
        "from transformers import AutoModel\n"
        "import hf_mtl\n"
        "from hf_mtl.metrics import metric_path\n"
        f"model = AutoModel.from_pretrained({str(tmp_path / 'model')!r}).eval()\n"
        f"pixels = torch.load({str(tmp_path / 'pixels.pt')!r}, weights_only=True)\n"
        "logits = {k: v.tolist() for k, v in model(pixel_values=pixels).logits.items()}\n"
        f"loaded = [type(evaluate.load(metric_path(m))).__name__ for m in {modules!r}]\n"
        f"training = [m for m in sys.modules if m.removeprefix('hf_mtl.') in {TRAINING!r}]\n"
        "print(json.dumps({'logits': logits, 'loaded': loaded, 'training': training}))"
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["training"] == []
    assert out["loaded"] == [m.capitalize() for m in modules]
    assert out["logits"].keys() == expected.keys()
    for name, values in expected.items():
        assert np.allclose(out["logits"][name], values, atol=1e-5), name
