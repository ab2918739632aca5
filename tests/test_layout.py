"""The floor plan holds: imports point one way, nothing reaches for another module's private names, one
module owns the run directory's names and the checkpoint's keys, and files stay short."""
import ast
import re
from pathlib import Path

import pytest

import cijepa_lite

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "cijepa_lite"
# Rooms, lowest first: a module may import its own room and any lower one, never a room beside or above it.
RANKS = {"base": 0, "method": 1, "data": 1, "eval": 2, "engine": 3, "front": 4}
BASE = {"config", "rng", "provenance", "files"}


def room(module: str) -> str:
    """The room of a module given as 'cijepa_lite.x.y'."""
    parts = module.split(".")[1:]
    if not parts or parts[0] == "__init__":
        return "front"  # the top-level package re-exports the public surface: it is the front door
    if parts[0] in ("method", "data", "eval", "engine"):
        return parts[0]
    return "base" if parts[0] in BASE else "front"


def modules(folder: Path, prefix: str):
    for path in sorted(folder.rglob("*.py")):
        rel = path.relative_to(folder).with_suffix("")
        yield path, ".".join([prefix, *rel.parts])


def imports(path: Path, module: str) -> list[tuple[str, list[str], int]]:
    """(imported module, names, line) of every import in a file, relative ones resolved, inside functions too."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, [], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            found.append((base, [alias.name for alias in node.names], node.lineno))
    return found


def test_imports_point_one_way_and_the_method_reads_on_its_own():
    wrong = []
    for path, module in modules(PACKAGE, "cijepa_lite"):
        here = room(module)
        for target, names, line in imports(path, module):
            if not target.startswith("cijepa_lite"):
                continue
            targets = [target] if target != "cijepa_lite" else [f"cijepa_lite.{n}" for n in names]
            for t in targets:
                there = room(t)
                if there != here and RANKS[there] >= RANKS[here]:
                    wrong.append(f"{path.relative_to(ROOT)}:{line} ({here}) imports {t} ({there})")
    assert wrong == []


def test_the_layout_check_catches_a_wrong_way_import(tmp_path):
    """The check above can fail: a method module importing the engine is flagged."""
    bad = tmp_path / "method" / "x.py"
    bad.parent.mkdir()
    bad.write_text("from ..engine import train\nfrom .. import rng\n")
    (target, _, _), (ok, names, _) = imports(bad, "cijepa_lite.method.x")
    assert (target, room(target), ok, names) == ("cijepa_lite.engine", "engine", "cijepa_lite", ["rng"])
    assert RANKS[room(target)] >= RANKS["method"]


def test_the_public_surface_is_importable_from_the_top():
    from cijepa_lite import CIJEPA, PRESETS, Config, MaskSampler, depth_weights, get_config, train  # noqa: F401

    assert set(cijepa_lite.__all__) >= {"Config", "PRESETS", "get_config", "depth_weights", "MaskSampler", "CIJEPA",
                                        "train"}


def _private_uses(path: Path, module: str) -> list[str]:
    """Private names of kit modules this file imports or reaches through a module it imported."""
    tree = ast.parse(path.read_text())
    kit_aliases, found = set(), []
    for target, names, line in imports(path, module):
        if target.startswith("cijepa_lite"):
            found += [f"{path.name}:{line} imports {target}.{n}" for n in names
                      if n.startswith("_") and not n.startswith("__")]
            kit_aliases |= set(names) if names else {target.split(".")[-1]}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in kit_aliases \
                and node.attr.startswith("_") and not node.attr.startswith("__"):
            found.append(f"{path.name}:{node.lineno} uses {node.value.id}.{node.attr}")
    return found


def test_no_module_or_test_uses_another_modules_private_names():
    found = [u for path, module in modules(PACKAGE, "cijepa_lite") for u in _private_uses(path, module)]
    found += [u for path, module in modules(ROOT / "tests", "tests") for u in _private_uses(path, module)]
    assert found == []


def _string_constants(path: Path) -> set[str]:
    return {n.value for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Constant)
            and isinstance(n.value, str)}


@pytest.mark.parametrize("name,owner", [("config.json", "engine/rundir.py"), ("metrics.jsonl", "engine/rundir.py"),
                                        ("checkpoints", "engine/rundir.py"), ("run.lock", "engine/rundir.py")])
def test_each_run_directory_name_is_spelled_in_one_module(name, owner):
    spelled = [str(p.relative_to(PACKAGE)) for p, _ in modules(PACKAGE, "cijepa_lite")
               if any(name == s or re.search(rf"(^|/){re.escape(name)}$", s) for s in _string_constants(p))]
    assert spelled == [owner]


def test_the_checkpoints_keys_are_written_in_one_module():
    writers = []
    for path, _ in modules(PACKAGE, "cijepa_lite"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Dict):
                keys = {k.value for k in node.keys if isinstance(k, ast.Constant)}
                if {"student", "teacher", "predictors", "optimizer"} <= keys:
                    writers.append(str(path.relative_to(PACKAGE)))
    assert writers == ["engine/rundir.py"]


def test_no_file_is_over_300_lines():
    long = {str(p.relative_to(ROOT)): n for folder in (PACKAGE, ROOT / "tests") for p in folder.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 300}
    assert long == {}
