"""The package's layering, read from its source (ast): imports point one way.

shape → operators / geodesics / kernels → method modules → experiments → notebooks. A method
module never knows about checkpoints or reports (it never imports ``shapelib.experiments``), no
two modules import each other (directly or through others), and every import of a shapelib module
sits at the top of its file — a function-local import of a shapelib module is how a cycle hides.
Function-local imports of third-party packages stay allowed: they keep ``import shapelib`` light
(torch, plotly, pyFM, KeOps... load when a function needs them).
"""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "shapelib"

#: the method modules (and packages) of the issue's layering: none of them may import experiments
METHOD_MODULES = ("shape", "operators", "kernels", "diffusion", "meps", "fmaps", "implicit", "cpnet", "metrics",
                  "geodesics", "train", "data")
#: the deprecated one-line aliases of the old top-level reproduction modules (kept for one release)
ALIASES = {"shapelib.protocols", "shapelib.reproduce", "shapelib.fmaps_eval", "shapelib.report", "shapelib.checkpoints"}


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def resolve(module: str, node: ast.ImportFrom | ast.Import, is_package: bool) -> list[str]:
    """The absolute names of the shapelib modules an import statement refers to."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == "shapelib"]
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    if target.split(".")[0] != "shapelib":
        return []
    # `from .x import y`: y may be a submodule or a name of x; list both (the graph keeps the ones that exist)
    return [target] + [f"{target}.{a.name}" for a in node.names]


def import_graph(root: Path = PACKAGE):
    """``(edges, local)``: module → set of shapelib modules it imports (anywhere), and the
    function-local shapelib imports as (module, line, target)."""
    files = {module_name(p, root): p for p in root.rglob("*.py")}
    edges, local = {}, []
    for mod, path in files.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        is_package = path.name == "__init__.py"
        targets = set()
        top_level = {id(n) for n in tree.body}
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            names = [t for t in resolve(mod, node, is_package) if t in files]
            targets.update(names)
            nested = id(node) not in top_level and not _in_top_level_block(tree, node)
            if names and nested:
                local.append((mod, node.lineno, names[0]))
        edges[mod] = targets - {mod}
    return edges, local


def _in_top_level_block(tree: ast.Module, node) -> bool:
    """An import inside a module-level ``if``/``try`` (e.g. TYPE_CHECKING, optional dependencies) is still top level."""
    for stmt in tree.body:
        if isinstance(stmt, (ast.If, ast.Try)) and any(n is node for n in ast.walk(stmt)):
            return not any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) for n in ast.walk(stmt))
    return False


def find_cycle(edges: dict) -> list[str] | None:
    """One import cycle (as a list of modules, first = last), or None. A package's ``__init__``
    importing its own submodules is not a cycle (the submodules importing the package is)."""
    def deps(m):
        return {t for t in edges.get(m, ()) if not t.startswith(m + ".")}

    state, stack = {}, []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for t in sorted(deps(m)):
            if state.get(t) == 1:
                return stack[stack.index(t):] + [t]
            if t not in state:
                found = visit(t)
                if found:
                    return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(edges):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def is_method_module(mod: str) -> bool:
    parts = mod.split(".")
    return len(parts) > 1 and parts[1] in METHOD_MODULES


def test_there_is_no_import_cycle():
    cycle = find_cycle(import_graph()[0])
    assert cycle is None, "import cycle: " + " → ".join(cycle)


def test_method_modules_never_import_the_reproduction_layer():
    edges, _ = import_graph()
    bad = sorted((m, t) for m, ts in edges.items() if is_method_module(m)
                 for t in ts if t.startswith(("shapelib.experiments", "shapelib.solutions")) or t in ALIASES)
    assert not bad, f"method modules import the reproduction layer: {bad}"


def test_the_reproduction_layer_imports_no_alias_and_the_registry_no_paper():
    edges, _ = import_graph()
    bad = sorted((m, t) for m, ts in edges.items() if m.startswith("shapelib.experiments") for t in ts if t in ALIASES)
    assert not bad, f"the experiments import the deprecated aliases: {bad}"
    papers = {f"shapelib.experiments.{p}" for p in ("diffusionnet", "meps", "fmaps", "fmaps_axiomatic", "cpnet", "runner")}
    assert not edges["shapelib.experiments.registry"] & papers, "the registry finds the paper files on demand, never imports them"


#: the layers under the method modules: a measure or an operator never depends on how it is drawn
FOUNDATION = ("shapelib.shape", "shapelib.operators", "shapelib.geodesics", "shapelib.kernels", "shapelib.metrics")


def test_the_foundation_never_imports_the_drawing_module():
    edges, _ = import_graph()
    bad = sorted((m, t) for m in FOUNDATION for t in edges.get(m, ()) if t == "shapelib.viz")
    assert not bad, f"shape / operators / geodesics / kernels / metrics import viz (move the drawing helper to viz): {bad}"


def test_no_function_local_import_of_a_shapelib_module():
    _, local = import_graph()
    assert not local, "function-local shapelib imports (move them to the top of the file): " + \
        ", ".join(f"{m}:{line} → {t}" for m, line, t in local)


def test_the_checks_catch_a_planted_cycle_and_a_planted_upward_import(tmp_path):
    """The checks above are not vacuous: in a copy of the package, a method module that imports its
    paper's experiment file (which imports it back) is a cycle and an upward import, and a
    function-local shapelib import is found."""
    import shutil

    copy = tmp_path / "shapelib"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    path = copy / "fmaps.py"
    path.write_text("from .experiments import fmaps as planted  # planted\n" + path.read_text())
    edges, _ = import_graph(copy)
    cycle = find_cycle(edges)
    assert cycle is not None and "shapelib.fmaps" in cycle, cycle
    assert "shapelib.experiments.fmaps" in edges["shapelib.fmaps"]
    assert is_method_module("shapelib.fmaps")
    path.write_text(path.read_text().replace("from .experiments import fmaps as planted  # planted\n", "")
                    + "\n\ndef planted():\n    from . import operators\n    return operators\n")
    assert any(m == "shapelib.fmaps" for m, _, _ in import_graph(copy)[1])


@pytest.mark.parametrize("module", ["shapelib.experiments.registry", "shapelib.experiments.checkpoints"])
def test_the_lower_layers_of_the_reproduction_layer_import_no_paper(module):
    edges, _ = import_graph()
    papers = {f"shapelib.experiments.{p}" for p in ("diffusionnet", "meps", "fmaps", "fmaps_axiomatic", "cpnet")}
    assert not edges[module] & papers


#: third-party packages a function may import where it needs them: optional or heavy (they keep
#: ``import shapelib`` light and a missing one fails only the function that needs it)
LAZY_OK = {"torch", "scipy", "matplotlib", "mpl_toolkits", "plotly", "meshplot", "pyFM", "pykeops", "igl", "gdist",
           "potpourri3d", "robust_laplacian", "skimage", "sklearn", "trimesh", "pymeshlab", "ot", "meshio",
           "IPython", "ipywidgets", "pygments", "nbclient", "nbformat", "nbconvert", "jupyter_server_mathjax",
           "threadpoolctl", "fcntl", "resource", "psutil", "selenium"}


def local_light_imports(root: Path = PACKAGE) -> list[str]:
    """Function-local imports of modules that are neither optional nor heavy (the standard library,
    numpy, tqdm...): nothing is gained by hiding them, and they hide what a module depends on."""
    out = []
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.Import):
                    mods = [a.name.split(".")[0] for a in node.names]
                elif isinstance(node, ast.ImportFrom) and not node.level:
                    mods = [(node.module or "").split(".")[0]]
                else:
                    continue
                out += [f"{module_name(path, root)}:{node.lineno} {m}" for m in mods
                        if m not in LAZY_OK and m != "shapelib"]
    return sorted(set(out))


def test_function_local_imports_are_only_optional_or_heavy_packages():
    bad = local_light_imports()
    assert not bad, "function-local imports of light modules (move them to the top of the file): " + ", ".join(bad)


def test_the_local_import_check_finds_a_planted_one(tmp_path):
    copy = tmp_path / "shapelib"
    copy.mkdir()
    (copy / "__init__.py").write_text("")
    (copy / "m.py").write_text("def f():\n    import json\n    import torch\n    return json, torch\n")
    assert local_light_imports(copy) == ["shapelib.m:2 json"]
