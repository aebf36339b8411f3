"""core.rundir.layout is the only place a run's file and folder names are spelled.

Every .py file of core/ and dashboard/ is parsed, and each string constant that is not a docstring (an
f-string taken whole, each {field} read as "*") is split at "/" into pieces. A piece names a run file when
- it is exactly a file name of layout.NAMES ("status.json", "test.npz", ...), or
- it begins with layout.VAL_EPOCH_PREFIX ("val_epoch_": the per-epoch files have no fixed name), or
- it is an f-string's piece that begins with fixed text and, its fields standing for anything, spells a
  name (f"features_{split}.npz"; not f"{name}.pt", which names nothing by itself), or
- it is a folder name ("checkpoints", "predictions") used as a path: the string holds a "/", or it is an
  operand of `/`, or an argument of Path(...), .joinpath(...) or os.path.join(...). Alone, those folder
  names are ordinary words ("predictions" labels an array in a sentence).
So `run_dir / "status.json"`, `Path(run_dir, "predictions")` and f"predictions/{name} is damaged" are
found, while a sentence that mentions a file in prose ("status.json is damaged: ...") and docstrings
are not: a person may read a file's name; only code that builds a path must ask layout for it.

core/data/ is not searched: its meta.json is the data cache's own file, not a run's.
"""
from __future__ import annotations

import ast
import fnmatch
import inspect
from pathlib import Path

import pytest

from core.rundir import layout
from tests import REPO

ROOT = REPO
SEARCHED = ("core", "dashboard")
EXEMPT = (Path("core/rundir/layout.py"), Path("core/data"))
FOLDERS = (layout.CHECKPOINTS, layout.PREDICTIONS)
PATH_CALLS = ("Path", "PurePath", "joinpath", "join")


def docstring_nodes(tree: ast.AST) -> set[int]:
    """The ids of the constants that are docstrings of the module, its classes and its functions."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def pieces(node: ast.AST) -> list[tuple[str, bool]]:
    """(piece, is a pattern) for a string constant or an f-string: its text split at "/"; in an f-string
    each {field} reads "*" and the whole text is one pattern (the fields may hold the "/")."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [(piece.strip(), False) for piece in node.value.split("/")]
    if isinstance(node, ast.JoinedStr):
        text = "".join(part.value if isinstance(part, ast.Constant) else "*" for part in node.values)
        return [(piece.strip(), "*" in piece) for piece in text.split("/")]
    return []


def path_operands(tree: ast.AST) -> set[int]:
    """The ids of the nodes used as a path: operands of `/` and arguments of Path(), joinpath(), os.path.join()."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            found |= {id(node.left), id(node.right)}
        elif isinstance(node, ast.Call):
            func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            if func in PATH_CALLS:
                found |= {id(arg) for arg in node.args}
    return found


def names_a_run_file(piece: str, pattern: bool, as_path: bool) -> bool:
    """Whether `piece` (see pieces) names a run file or folder; `as_path`: its string is used as a path."""
    if piece.startswith(layout.VAL_EPOCH_PREFIX):
        return True
    if piece in FOLDERS:
        return as_path
    if not pattern:
        return piece in layout.NAMES
    return not piece.startswith("*") and any(fnmatch.fnmatchcase(name, piece) for name in layout.NAMES)


def run_file_names_in(path: Path, root: Path = ROOT) -> list[str]:
    """'file:line: text' (file relative to `root`) for every string in `path` that builds a run file's path."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    docstrings, used_as_path = docstring_nodes(tree), path_operands(tree)
    inside_fstrings = {id(part) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for part in node.values}
    found = []
    for node in ast.walk(tree):
        if id(node) in docstrings or id(node) in inside_fstrings:
            continue  # an f-string is judged whole, not part by part
        split = pieces(node)
        as_path = id(node) in used_as_path or len(split) > 1
        if any(names_a_run_file(piece, pattern, as_path) for piece, pattern in split):
            text = node.value if isinstance(node, ast.Constant) else ast.unparse(node)
            found.append(f"{path.relative_to(root)}:{node.lineno}: {text!r}")
    return found


def searched_files() -> list[Path]:
    files = [p for top in SEARCHED for p in sorted((ROOT / top).rglob("*.py"))]
    return [p for p in files if not any(p.relative_to(ROOT).is_relative_to(exempt) for exempt in EXEMPT)]


def test_no_module_but_layout_spells_a_run_file_name():
    offenders = [hit for path in searched_files() for hit in run_file_names_in(path)]
    assert not offenders, ("these build a run file's path themselves; ask core.rundir.layout for it:\n"
                           + "\n".join(offenders))


def test_layout_names_are_all_distinct():
    assert len(set(layout.NAMES)) == len(layout.NAMES), sorted(n for n in layout.NAMES if layout.NAMES.count(n) > 1)
    assert not any(name.startswith(layout.VAL_EPOCH_PREFIX) for name in layout.NAMES)


def every_layout_path(run_dir: Path) -> dict[str, list[Path]]:
    """Each path function of layout, called with every value its arguments may take."""
    return {
        "config": [layout.config(run_dir)], "status": [layout.status(run_dir)], "meta": [layout.meta(run_dir)],
        "metrics": [layout.metrics(run_dir)], "test_summary": [layout.test_summary(run_dir)],
        "checkpoints_dir": [layout.checkpoints_dir(run_dir)],
        "checkpoint": [layout.checkpoint(run_dir, name) for name in layout.CHECKPOINT_NAMES],
        "predictions_dir": [layout.predictions_dir(run_dir)], "val_labels": [layout.val_labels(run_dir)],
        "val_first_look": [layout.val_first_look(run_dir)],
        "val_epoch": [layout.val_epoch(run_dir, 7)], "test_predictions": [layout.test_predictions(run_dir)],
        "features": [layout.features(run_dir, split) for split in layout.FEATURE_SPLITS],
        "feature_map": [layout.feature_map(run_dir)], "kfold_job": [layout.kfold_job(run_dir)],
        "out_of_fold": [layout.out_of_fold(run_dir)],
    }


def test_every_path_layout_builds_is_made_of_its_names_and_no_two_files_share_one(tmp_path):
    paths = every_layout_path(tmp_path)
    path_functions = {name for name, value in vars(layout).items() if inspect.isfunction(value)
                      and value.__module__ == layout.__name__ and "run_dir" in inspect.signature(value).parameters}
    assert path_functions - {"val_epoch_files"} == paths.keys(), "a path function of layout is not checked here"
    built = [path for group in paths.values() for path in group]
    assert len(set(built)) == len(built)
    for path in built:
        inside = path.relative_to(tmp_path).parts
        assert all(part in layout.NAMES or part.startswith(layout.VAL_EPOCH_PREFIX) for part in inside), path
    assert layout.val_epoch(tmp_path, 7).name == "val_epoch_0007.npz"  # the format every earlier run was saved in


def test_val_epoch_files_finds_only_the_names_val_epoch_writes(tmp_path):
    layout.predictions_dir(tmp_path).mkdir()
    for epoch in (3, 1, 12):
        layout.val_epoch(tmp_path, epoch).touch()
    for stray in ("val_epoch_copy.npz", "val_epoch_00002.npz", "val_epoch_0004.npz.tmp"):
        (layout.predictions_dir(tmp_path) / stray).touch()
    assert layout.val_epoch_files(tmp_path) == {e: layout.val_epoch(tmp_path, e) for e in (1, 3, 12)}
    assert list(layout.val_epoch_files(tmp_path)) == [1, 3, 12]


@pytest.mark.parametrize("call", [lambda d: layout.checkpoint(d, "../../etc/passwd"),
                                  lambda d: layout.features(d, "val")])
def test_a_name_from_outside_is_refused(tmp_path, call):
    with pytest.raises(ValueError):
        call(tmp_path)


@pytest.mark.parametrize("source, expected", [
    ('path = run_dir / "status.json"', True),
    ('path = Path(run_dir, "predictions")', True),
    ('path = run_dir.joinpath("checkpoints", name)', True),
    ('watched = ("metrics.jsonl", "config.json")', True),
    ('sentence = f"predictions/{name} is damaged"', True),
    ('path = f"val_epoch_{epoch:04d}.npz"', True),
    ('path = f"features_{split}.npz"', True),
    ('path = "checkpoints/last.pt"', True),
    ('sentence = "status.json is damaged: state is missing."', False),
    ('path = f"{name}.pt"', False),
    ('path = run_dir / "sweep.json"', False),
    ('arrays = (("labels", labels), ("predictions", pred))', False),
    ('def f():\n    "Reads status.json."', False),
    ('"""A module reading predictions/test.npz."""', False),
])
def test_the_search_tells_a_path_from_a_sentence(tmp_path, source, expected):
    module = tmp_path / "module.py"
    module.write_text(source + "\n")
    assert bool(run_file_names_in(module, root=tmp_path)) is expected
