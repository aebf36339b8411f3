"""The README is the map of the house: its Layout section lists every module and package of core/ and
dashboard/, and every path it names exists; requirements.txt's comments point at real files too.

The Layout section is a tree in a fenced block: an entry is a line whose first word is a path (a folder ends
in "/"), indented two spaces a level below the folder above it, then what it holds; a line indented deeper
than any entry could be carries on the description above it.
"""
from __future__ import annotations

import re

from tests import REPO

README = REPO / "README.md"
LISTED_TREES = ("core", "dashboard")  # every module and package under these must be in the Layout section
PATH_WORD = re.compile(r"\.?[\w-]+(?:[./][\w-]+)*/?")  # core/, files.py, .ci/run
# A path into the checkout, as the README and requirements.txt write one ("runs/<id>/" and the run
# folder's own files are named relative to a run, so they are not among these).
CHECKOUT_PATH = re.compile(r"(?<![\w./])(?:core|dashboard|tests|\.ci|\.streamlit)/[\w./-]*")


def layout_tree(readme: str) -> str:
    """The fenced block of the README's "## Layout" section."""
    section = readme.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    return section.split("```", 2)[1].split("\n", 1)[1]


def tree_paths(tree: str) -> list[str]:
    """The paths of a tree's entries, each joined to the folders above it ("core/rundir/files.py")."""
    folders: list[str] = []  # the folder entry at each level above the current line
    paths = []
    for line in tree.splitlines():
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip(" "))
        level, word = indent // 2, line.split()[0]
        if indent % 2 or level > len(folders) or not PATH_WORD.fullmatch(word):
            continue  # the description of the entry above, carried on
        del folders[level:]
        paths.append("".join(folders) + word)
        if word.endswith("/"):
            folders.append(word)
    return paths


def modules_and_packages() -> set[str]:
    """Every Python module (but __init__ and __main__) and package folder of core/ and dashboard/."""
    found = set()
    for tree in LISTED_TREES:
        for path in (REPO / tree).rglob("*.py"):
            relative = path.relative_to(REPO)
            folders = relative.parents[:-1]  # core/rundir/files.py -> core/rundir, core
            found.update(f"{folder.as_posix()}/" for folder in folders)
            if path.name not in ("__init__.py", "__main__.py"):
                found.add(relative.as_posix())
    return found


def test_the_tree_reader_joins_entries_to_their_folders_and_skips_carried_on_descriptions():
    tree = ("core/\n"
            "  rundir/          the run folder:\n"
            "    files.py       the one atomic write; only\n"
            "                   regular files.py read\n"
            "  jobs.py          the queue\n"
            "dashboard/\n"
            "  app.py           pages\n"
            ".ci/run            CI\n")
    assert tree_paths(tree) == ["core/", "core/rundir/", "core/rundir/files.py", "core/jobs.py", "dashboard/",
                                "dashboard/app.py", ".ci/run"]


def test_the_layout_lists_every_module_and_package_of_core_and_dashboard():
    listed = set(tree_paths(layout_tree(README.read_text())))
    missing = sorted(modules_and_packages() - listed)
    assert not missing, f"README's Layout section does not list: {', '.join(missing)}"


def test_every_path_in_the_layout_exists():
    listed = tree_paths(layout_tree(README.read_text()))
    gone = [path for path in listed if not (REPO / path).exists() or path.endswith("/") and not (REPO / path).is_dir()]
    assert not gone, f"README's Layout section lists paths that do not exist: {', '.join(gone)}"


def test_every_path_of_the_checkout_the_readme_names_exists():
    named = set(CHECKOUT_PATH.findall(README.read_text()))
    gone = sorted(path for path in named if not (REPO / path.rstrip(".")).exists())
    assert not gone, f"README.md names paths that do not exist: {', '.join(gone)}"


def test_every_path_in_the_requirements_comments_exists():
    comments = [line for line in (REPO / "requirements.txt").read_text().splitlines() if line.lstrip().startswith("#")]
    named = {path for line in comments for path in CHECKOUT_PATH.findall(line)}
    assert named, "requirements.txt's comments name no file: this test would check nothing"
    gone = sorted(path for path in named if not (REPO / path.rstrip(".")).exists())
    assert not gone, f"requirements.txt's comments name paths that do not exist: {', '.join(gone)}"
