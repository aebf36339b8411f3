"""Reliability III, the runs folder side: nothing is lost through a link, a FIFO never blocks a page, a full
disk (however torch phrases it) fails the run in one sentence, and a read-only, full or missing runs folder
answers every page action and the command line in one sentence.

The real disks are small tmpfs mounts (root only; skipped with a sentence elsewhere); the same paths are
also driven by raising the error from the write itself, so they are covered without mounting."""
from __future__ import annotations

import errno
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from core.rundir import catalog, checkpoints, files, lifecycle, records

from core.training import engine
from core.jobs import JobManager
from tests.helpers import (app_runs_folder, open_view, release_fifo_readers, remount_read_only, shown,
                           tiny_config, tmpfs, train_tiny_run)
from tests import REPO

DISK_FULL = "the disk is full: free some space, then resume the run"
READ_ONLY = ("the runs folder is on a read-only file system; point CIFAR_RUNS_DIR (or --runs-dir) at a folder you "
             "can write to")
NO_PERMISSION = ("permission denied; give this user write access to the runs folder, or point CIFAR_RUNS_DIR "
                 "(or --runs-dir) at another folder")
SHORT_WRITE = "[enforce fail at inline_container.cc:672] . unexpected pos 17408 vs 17296"  # torch.save, disk full


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """One tiny finished run (tutorial-cnn with Adam, 1 epoch), copied into each test's runs folder."""
    return train_tiny_run(tmp_path_factory.mktemp("trained"), name="real run", epochs=1).run_dir


def copy_run(run_dir: Path, runs_dir: Path) -> Path:
    runs_dir.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copytree(run_dir, runs_dir / run_dir.name))


def files_of(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (links not followed) with its bytes: 'nothing was lost or changed'."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.is_symlink()}


def temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core.train", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300)


# ---------------------------------------------------------------------------------------------
# 1: links. An entry that is a link is never a run: listed as such, never followed, deleted as a link.
# ---------------------------------------------------------------------------------------------

def test_deleting_a_link_to_another_run_removes_the_link_and_the_run_keeps_every_file(tmp_path, trained):
    runs_dir = tmp_path / "runs"
    real = copy_run(trained, runs_dir)
    before = files_of(real)
    (runs_dir / "alias").symlink_to(real)  # absolute
    (runs_dir / "alias2").symlink_to(real.name)  # relative
    lifecycle.delete_run(runs_dir, "alias")
    JobManager(runs_dir).delete("alias2")  # the pages' way
    assert not os.path.lexists(runs_dir / "alias") and not os.path.lexists(runs_dir / "alias2")
    assert files_of(real) == before
    assert [s.run_id for s in catalog.list_runs(runs_dir)] == [real.name]


LINK_TARGETS = {
    "another run": lambda runs_dir, outside, real: real,
    "a run folder outside": lambda runs_dir, outside, real: outside,
    "nothing (broken)": lambda runs_dir, outside, real: runs_dir / "gone",
}


@pytest.mark.parametrize("target", LINK_TARGETS)
def test_a_link_is_listed_as_a_link_and_nothing_reads_or_writes_through_it(tmp_path, trained, target):
    runs_dir = tmp_path / "runs"
    real = copy_run(trained, runs_dir)
    outside = copy_run(trained, tmp_path / "elsewhere")
    alias = runs_dir / "alias"
    alias.symlink_to(LINK_TARGETS[target](runs_dir, outside, real))
    before = {p: files_of(p) for p in (real, outside)}

    listed = {s.run_id: s for s in catalog.list_runs(runs_dir)}
    assert listed[real.name].state == "completed"
    link = listed["alias"]
    assert link.state == "damaged" and link.error.startswith("alias is a link to "), link.error
    assert link.error == catalog.link_problem(alias) and "never followed" in link.error
    assert link.config == {} and link.status == {}, "the target was not read"
    for refused in (lambda: catalog.run_path(runs_dir, "alias"), lambda: lifecycle.rename_run(runs_dir, "alias", "x"),
                    lambda: JobManager(runs_dir).resume("alias"), lambda: engine.resume_run(runs_dir, "alias")):
        with pytest.raises(catalog.RunError, match="is a link"):
            refused()
    lifecycle.delete_run(runs_dir, "alias")
    assert not os.path.lexists(alias)
    assert {p: files_of(p) for p in (real, outside)} == before, "nothing was written or removed through the link"


def test_the_runs_page_renames_and_deletes_a_link_without_touching_the_run(tmp_path_factory, trained):
    with app_runs_folder(tmp_path_factory) as folder:
        real = copy_run(trained, folder)
        before = files_of(real)
        (folder / "alias").symlink_to(real)
        at = open_view("views/runs.py")
        at.selectbox(key="runs_manage").set_value("alias").run()
        assert any("alias is a link to" in c.value for c in at.caption)
        at.text_input(key="runs_new_name").input("renamed through the link")
        at.button(key="runs_rename").click().run()
        assert errors(at) == [catalog.link_problem(folder / "alias")]
        at.button(key="runs_delete").click().run()
        at.button(key="runs_delete_confirm").click().run()
        assert not at.exception and [s.value for s in at.success] == ["Deleted."]
        assert not os.path.lexists(folder / "alias")
        assert files_of(real) == before
        assert [s.run_id for s in catalog.list_runs(folder)] == [real.name]


# ---------------------------------------------------------------------------------------------
# 2: only regular files are opened: a FIFO, socket or device under a run file's name never blocks
# ---------------------------------------------------------------------------------------------

def returns_promptly(call: Callable, blockers: list[Path]):
    """call() in a thread; if it hangs (blocked on a FIFO), the test fails instead of the suite hanging."""
    outcome: dict = {}
    thread = threading.Thread(target=lambda: outcome.update(value=call()), daemon=True)
    thread.start()
    thread.join(60)
    if thread.is_alive():
        for fifo in blockers:
            release_fifo_readers(fifo)
        thread.join(10)
        pytest.fail(f"{call} blocked on {', '.join(p.name for p in blockers)}")
    return outcome.get("value")


def replace_with(path: Path, kind: str) -> list[Path]:
    """Put a FIFO, a listening socket's file or a link to a device where `path` was; returns the FIFOs made."""
    path.unlink(missing_ok=True)
    if kind == "fifo":
        os.mkfifo(path)
        return [path]
    if kind == "socket":
        here = os.getcwd()
        os.chdir(path.parent)  # bound by its short name: a socket's path may be at most 107 bytes
        try:
            with socket.socket(socket.AF_UNIX) as server:
                server.bind(path.name)  # closing it leaves the socket file behind, as a crashed server does
        finally:
            os.chdir(here)
        return []
    path.symlink_to("/dev/null")  # a character device (reading it gives nothing, so no hang without the fix)
    return []

KIND_WORDS = {"fifo": "a named pipe (FIFO)", "socket": "a socket", "device": "a character device"}


@pytest.mark.parametrize("name, kind", [("status.json", "fifo"), ("config.json", "fifo"), ("meta.json", "fifo"),
                                        ("status.json", "socket"), ("status.json", "device")])
def test_a_run_file_that_is_not_a_regular_file_makes_the_run_damaged_without_blocking(tmp_path, trained, name, kind):
    run_dir = copy_run(trained, tmp_path / "runs")
    fifos = replace_with(run_dir / name, kind)
    listed = returns_promptly(lambda: catalog.list_runs(tmp_path / "runs"), fifos)
    [summary] = listed
    assert summary.state == "damaged"
    assert summary.error == f"{name} is damaged: it is {KIND_WORDS[kind]}, not a regular file; only a regular file is read."


def test_a_fifo_for_metrics_test_summary_or_checkpoint_is_not_opened(tmp_path, trained):
    run_dir = copy_run(trained, tmp_path / "runs")
    fifos = [run_dir / "metrics.jsonl", run_dir / "test_summary.json", run_dir / "checkpoints" / "last.pt"]
    for fifo in fifos:
        replace_with(fifo, "fifo")
    assert returns_promptly(lambda: catalog.read_metrics(run_dir), fifos) == []
    assert returns_promptly(lambda: records.read_test_summary(run_dir), fifos) is None

    def load() -> str:
        try:
            checkpoints.Checkpoint.read(run_dir, "last")
        except catalog.RunError as exc:
            return str(exc)
        return "loaded"

    assert returns_promptly(load, fifos) == (f"Checkpoint last.pt of {run_dir.name} cannot be loaded: it is a named "
                                             "pipe (FIFO), not a regular file.")
    assert catalog.summarize_run(run_dir).state == "completed", "curves and weights unreadable, the run itself is fine"


@pytest.mark.parametrize("page", ["views/runs.py", "views/train.py"])
def test_pages_load_with_a_fifo_for_a_status_file(tmp_path_factory, trained, page):
    with app_runs_folder(tmp_path_factory) as folder:
        copy_run(trained, folder)
        broken = Path(shutil.copytree(trained, folder / "with-a-fifo"))
        fifos = [broken / "status.json"]
        replace_with(fifos[0], "fifo")
        try:
            at = returns_promptly(lambda: open_view(page), fifos)
        finally:
            release_fifo_readers(fifos[0])
        if page == "views/runs.py":
            frame = at.dataframe[0].value
            problem = frame[frame["Run id"] == "with-a-fifo"].iloc[0]["Problem"]
            assert problem == ("status.json is damaged: it is a named pipe (FIFO), not a regular file; only a "
                               "regular file is read.")


# ---------------------------------------------------------------------------------------------
# 3: a full disk, however it is phrased: errno first, then the words, then torch's short write
# ---------------------------------------------------------------------------------------------

def raised_while(exc: BaseException, context: BaseException) -> BaseException:
    exc.__context__ = context
    return exc


@pytest.mark.parametrize("exc, free, full", [
    (OSError(errno.ENOSPC, "No space left on device"), 10**12, True),
    (OSError(errno.EDQUOT, "Disk quota exceeded"), 10**12, True),
    (OSError("No space left on device"), 10**12, True),  # errno None, the words only
    (OSError(None, "No space left on device"), 10**12, True),
    (RuntimeError("basic_ios::clear: iostream error: No space left on device"), 10**12, True),
    (raised_while(RuntimeError(SHORT_WRITE), OSError(errno.ENOSPC, "No space left on device")), 10**12, True),
    (raised_while(RuntimeError(SHORT_WRITE), RuntimeError("basic_ios::clear: iostream error")), 0, True),
    (RuntimeError(SHORT_WRITE), 0, True),
    (RuntimeError(SHORT_WRITE), 10**12, False),  # a short write on a disk with room is another failure
    (RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed"), 4096, True),
    (OSError(errno.EROFS, "Read-only file system"), 0, False),  # errno first: the disk may be full too
    (raised_while(RuntimeError(SHORT_WRITE), OSError(errno.EIO, "Input/output error")), 0, False),
    (RuntimeError("CUDA error: an illegal memory access was encountered"), 0, False),
    (ValueError("no space left in the batch"), 0, False),
])
def test_the_full_disk_classifier(monkeypatch, tmp_path, exc, free, full):
    monkeypatch.setattr(files, "free_bytes", lambda folder: free)
    assert files.is_disk_full(exc, tmp_path) is full


@pytest.mark.parametrize("code, words", [
    (errno.ENOSPC, DISK_FULL), (errno.EDQUOT, DISK_FULL),
    (errno.EROFS, f"could not write meta.json: {READ_ONLY}"),
    (errno.EACCES, f"could not write meta.json: {NO_PERMISSION}"),
    (errno.EPERM, f"could not write meta.json: {NO_PERMISSION}"),
    (errno.ENOENT, "could not write meta.json: its folder no longer exists (it was moved or deleted)"),
    (errno.EIO, "could not write meta.json: Input/output error"),
])
def test_every_oserror_is_one_sentence_naming_the_file_not_its_temporary(code, words):
    exc = OSError(code, os.strerror(code), "/runs/r1/.meta.json.0123456789ab.tmp")
    assert files.disk_error_sentence(exc) == words
    page = files.action_error_sentence(exc, "Renaming the run")
    assert page == f"Renaming the run failed: {words.replace('resume the run', 'try again')}."


def test_a_short_torch_write_on_a_full_disk_comes_out_of_write_atomically_as_enospc(tmp_path, monkeypatch):
    target = tmp_path / "last.pt"

    def short_write(tmp: Path) -> None:
        tmp.write_bytes(b"partial")
        raise RuntimeError(SHORT_WRITE)

    with pytest.raises(RuntimeError, match="unexpected pos"):  # the disk has room: not a full disk
        files.write_atomically(target, short_write)
    monkeypatch.setattr(files, "free_bytes", lambda folder: 0)
    with pytest.raises(OSError) as raised:
        files.write_atomically(target, short_write)
    assert (raised.value.errno, raised.value.filename) == (errno.ENOSPC, str(target))
    assert raised.value.__context__ is None, "torch's error (and the writer it holds) is let go"
    assert list(tmp_path.iterdir()) == []


def fill_up_on_save(monkeypatch, how: str, after: int = 1) -> None:
    """torch.save fails on a 'full disk' from its (after+1)-th call, the way `how` says torch reports it."""
    saves, real_save = [], torch.save

    def save(payload, fh, *args, **kwargs):
        saves.append(fh)
        if len(saves) <= after:
            return real_save(payload, fh, *args, **kwargs)
        if isinstance(fh, (str, os.PathLike)):  # torch.save is also given a path
            Path(fh).write_bytes(b"partial")
        else:
            fh.write(b"partial")
        if how == "short write":  # torch's own writer: no errno anywhere, the disk really is full
            monkeypatch.setattr(files, "free_bytes", lambda folder: 0)
            raise raised_while(RuntimeError(SHORT_WRITE), RuntimeError("basic_ios::clear: iostream error"))
        if how == "no errno":
            raise OSError("No space left on device")
        raise raised_while(RuntimeError(SHORT_WRITE), OSError(errno.ENOSPC, "No space left on device"))

    monkeypatch.setattr(torch, "save", save)


@pytest.mark.parametrize("how", ["short write", "no errno", "errno in the context"])
def test_a_full_disk_phrased_any_way_fails_the_run_with_the_sentence_and_keeps_the_last_checkpoint(
        tmp_path, monkeypatch, caplog, how):
    fill_up_on_save(monkeypatch, how)
    result = start_run_quietly(tmp_path, epochs=3)
    monkeypatch.undo()
    assert (result.state, result.error) == ("failed", DISK_FULL)
    [summary] = catalog.list_runs(tmp_path)
    assert (summary.state, summary.error) == ("failed", DISK_FULL)
    assert temporaries(tmp_path) == []
    last = checkpoints.load_checkpoint(checkpoints.checkpoint_path(summary.path, "last"))
    assert last["progress"]["epoch"] == 1, "the previous checkpoint is intact"
    assert not [r for r in caplog.records if r.exc_info], "no traceback in the log"


def start_run_quietly(runs_dir: Path, **overrides):
    return engine.start_run(tiny_config(**overrides), runs_dir, device=torch.device("cpu"))


@pytest.mark.parametrize("size, model", [("60k", "tutorial-cnn"), ("3m", "resnet20")])
def test_command_line_on_a_tiny_full_disk_fails_the_run_with_one_sentence(tmp_path, size, model):
    """On 2b193e7 both ended with torch's "unexpected pos" RuntimeError: a traceback, the run left running."""
    with tmpfs(tmp_path / "disk", size) as disk:
        out = run_cli("--data", "synthetic", "--model", model, "--optimizer", "adam", "--epochs", "2",
                      "--batch-size", "100", "--precision", "fp32", "--device", "cpu", "--runs-dir", str(disk),
                      "--quiet")
        assert out.returncode == 1, out.stderr
        assert f"failed: {DISK_FULL}" in out.stderr and "Traceback" not in out.stderr, out.stderr
        assert "RuntimeError" not in out.stderr, out.stderr
        [summary] = catalog.list_runs(disk)
        assert (summary.state, summary.error) == ("failed", DISK_FULL)
        assert temporaries(disk) == []


def test_a_second_checkpoint_that_fills_a_real_disk_leaves_the_first_loadable(tmp_path, caplog):
    with tmpfs(tmp_path / "disk", "2m") as disk:  # room for last.pt and best.pt once, not for a third copy
        result = engine.start_run(tiny_config(optimizer="adam", epochs=3), disk, device=torch.device("cpu"))
        assert (result.state, result.error) == ("failed", DISK_FULL)
        [summary] = catalog.list_runs(disk)
        assert (summary.state, summary.error) == ("failed", DISK_FULL)
        assert temporaries(disk) == []
        last = checkpoints.load_checkpoint(checkpoints.checkpoint_path(summary.path, "last"))
        assert last["progress"]["epoch"] == 1
        assert not [r for r in caplog.records if r.exc_info], "no traceback in the log"


def fill(disk: Path) -> None:
    """Write a filler file until the disk has not one byte left."""
    with open(disk / "filler", "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        try:
            while True:
                fh.write(b"\0")
        except OSError:
            pass


def test_a_run_resumed_on_a_disk_with_no_room_even_for_its_status_ends_failed_not_interrupted(tmp_path, trained):
    with tmpfs(tmp_path / "disk", "2m") as disk:
        run_dir = copy_run(trained, disk)
        lifecycle.update_status(run_dir, state="stopped")
        fill(disk)
        result = engine.resume_run(disk, run_dir.name, device=torch.device("cpu"))
        assert (result.state, result.error) == ("failed", DISK_FULL)
        summary = catalog.summarize_run(run_dir)
        assert (summary.state, summary.error) == ("failed", DISK_FULL)
        assert temporaries(disk) == []
        assert checkpoints.load_checkpoint(checkpoints.checkpoint_path(run_dir, "last"))["progress"]["epoch"] == 1


# ---------------------------------------------------------------------------------------------
# 4: a read-only, full or missing runs folder: every page action and the command line say one sentence
# ---------------------------------------------------------------------------------------------

def refuse(code: int, file: str | None = None) -> Callable:
    """A stand-in for a writer of core.rundir (records, lifecycle) that fails with OSError(code) on `file` (else
    on the path it was given) as a read-only, forbidden or full folder would."""
    def write(path, *args, **kwargs):
        raise OSError(code, os.strerror(code), str(Path(path) / file if file else path))
    return write


PAGE_WORDS = {errno.EROFS: READ_ONLY, errno.EACCES: NO_PERMISSION, errno.ENOSPC: "the disk is full: free some "
              "space, then try again"}


def page_sentence(action: str, code: int, file: str | None, verb: str = "write") -> str:
    if code == errno.ENOSPC:
        return f"{action} failed: {PAGE_WORDS[code]}."
    return f"{action} failed: could not {verb}{f' {file}' if file else ''}: {PAGE_WORDS[code]}."


def errors(at: AppTest) -> list[str]:
    return [shown(e.value) for e in at.error]


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES, errno.ENOSPC])
def test_every_page_action_on_an_unwritable_runs_folder_is_one_sentence(tmp_path_factory, trained, monkeypatch, code):
    with app_runs_folder(tmp_path_factory) as folder:
        run_dir = copy_run(trained, folder)
        lifecycle.update_status(run_dir, state="stopped")
        before = files_of(folder)
        monkeypatch.setattr(records, "write_json", refuse(code))
        monkeypatch.setattr(lifecycle, "update_status", refuse(code, "status.json"))

        at = open_view(run_id=run_dir.name)  # Train page, the run in the live view
        at.button(key="live_resume").click().run()
        assert errors(at) == [page_sentence("Resuming the run", code, "status.json")]
        at.radio(key="train_data_kind").set_value("synthetic")
        at.button(key="train_start").click().run()
        assert not at.exception and errors(at) == [page_sentence("Starting the run", code, "config.json")]

        at = open_view("views/runs.py")
        at.selectbox(key="runs_manage").set_value(run_dir.name).run()
        at.text_input(key="runs_new_name").input("new name")
        at.button(key="runs_rename").click().run()
        assert errors(at) == [page_sentence("Renaming the run", code, "meta.json")]
        monkeypatch.setattr(lifecycle.shutil, "rmtree", refuse(code, "config.json"))
        at.button(key="runs_delete").click().run()
        at.button(key="runs_delete_confirm").click().run()
        assert not at.exception
        assert errors(at) == [page_sentence("Deleting the run", code, "config.json", verb="remove")]
        monkeypatch.undo()
        assert files_of(folder) == before, "nothing changed, nothing half-made"


@pytest.fixture
def read_only_runs(tmp_path_factory, trained):
    """A runs folder on a read-only tmpfs holding one stopped run, which the dashboard points at."""
    with app_runs_folder(tmp_path_factory) as folder, tmpfs(folder, "8m"):
        run_dir = copy_run(trained, folder)
        lifecycle.update_status(run_dir, state="stopped")
        remount_read_only(folder)
        yield run_dir


def test_pages_on_a_read_only_runs_folder_say_one_sentence_and_keep_the_run(read_only_runs):
    run_dir, folder = read_only_runs, read_only_runs.parent
    before = files_of(folder)
    at = open_view(run_id=run_dir.name)
    at.button(key="live_resume").click().run()
    assert errors(at) == [page_sentence("Resuming the run", errno.EROFS, "status.json")]
    at.radio(key="train_data_kind").set_value("synthetic")
    at.button(key="train_start").click().run()
    [started] = errors(at)
    assert started.startswith("Starting the run failed: could not write ") and started.endswith(f": {READ_ONLY}.")

    at = open_view("views/runs.py")
    at.selectbox(key="runs_manage").set_value(run_dir.name).run()
    at.text_input(key="runs_new_name").input("new name")
    at.button(key="runs_rename").click().run()
    assert errors(at) == [page_sentence("Renaming the run", errno.EROFS, "meta.json")]
    at.button(key="runs_delete").click().run()
    at.button(key="runs_delete_confirm").click().run()
    [deleting] = errors(at)
    assert deleting.startswith("Deleting the run failed: could not remove ") and deleting.endswith(f": {READ_ONLY}.")
    assert not at.exception
    assert files_of(folder) == before


def test_the_command_line_on_a_read_only_runs_folder_says_one_sentence(read_only_runs):
    folder = read_only_runs.parent
    before = files_of(folder)
    new = run_cli("--data", "synthetic", "--runs-dir", str(folder), "--quiet")
    assert new.returncode == 1 and new.stderr.startswith("error: could not write "), new.stderr
    assert new.stderr.rstrip().endswith(f": {READ_ONLY}.") and "Traceback" not in new.stderr, new.stderr
    resumed = run_cli("--resume", read_only_runs.name, "--runs-dir", str(folder), "--quiet")
    assert resumed.returncode == 1, resumed.stderr
    assert f"failed: could not write status.json: {READ_ONLY}" in resumed.stderr, resumed.stderr
    assert "Traceback" not in resumed.stderr, resumed.stderr
    assert files_of(folder) == before
