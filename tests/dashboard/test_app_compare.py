"""The Compare page driven by AppTest against real tiny runs: what it shows equals core.analysis.compare on the saved files.

Two one-epoch runs on the synthetic shapes with different seeds disagree on many test pictures, so there
are flips to show. Around them: a namesake of run B (a copy, created two minutes later), a run on other
data (refused), a run whose test file is damaged, a run still training, and an older run whose meta.json
has no class names and whose test file has no losses. AppTest cannot click an Altair chart or a table
row, so `click_square` and `pick_row` send the selection the browser would send, which runs the page's
own on_select callbacks (as tests/dashboard/test_app_live_mistakes.py does).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from core.analysis import compare
from core.data import load_dataset
from core.rundir import catalog, layout, lifecycle, predictions
from dashboard.run_listing import unique_labels
from tests.data_trees import make_tree
from tests.helpers import RunPage, chart_frame, shown, train_tiny_run

CLASSES = list(load_dataset("synthetic").classes)


def copy_run(source: Path, name: str, minutes_later: float = 0.0) -> Path:
    """A copy of a run folder under a new id, its meta.json renamed and its creation moved on."""
    target = source.parent / f"{source.name}-{name.replace(' ', '-')}"
    shutil.copytree(source, target)
    meta = json.loads((target / "meta.json").read_text())
    meta.update(name=name, created_at=meta["created_at"] + 60 * minutes_later)
    (target / "meta.json").write_text(json.dumps(meta))
    return target


def move_data(run_dir: Path, where: Path) -> None:
    """As if the run was trained on another machine: its data source is not here."""
    config = json.loads((run_dir / "config.json").read_text())
    config["data"] = str(where)
    (run_dir / "config.json").write_text(json.dumps(config))


@pytest.fixture(scope="module")
def fixture_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    runs_dir = root / "runs"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CIFAR_RUNS_DIR", str(runs_dir))
        mp.setenv("CIFAR_CACHE_DIR", str(root / "cache"))
        alpha = train_tiny_run(runs_dir, name="alpha", epochs=1, seed=0).run_dir
        beta = train_tiny_run(runs_dir, name="beta", epochs=1, seed=1, lr=0.02).run_dir
        twin = copy_run(beta, "beta", minutes_later=2)  # the same name: only the time tells them apart
        other = train_tiny_run(runs_dir, name="other data", data=str(make_tree(root / "tree")), epochs=1,
                               val_fraction=0.2).run_dir
        damaged = copy_run(beta, "damaged")
        layout.test_predictions(damaged).write_bytes(b"not an npz")
        old = copy_run(alpha, "old")  # as written before meta.json kept class names and test.npz kept losses
        meta = json.loads((old / "meta.json").read_text())
        del meta["classes"]
        (old / "meta.json").write_text(json.dumps(meta))
        saved = predictions.load_predictions(old)
        with open(layout.test_predictions(old), "wb") as fh:
            np.savez(fh, labels=saved.labels, pred=saved.pred, probs=saved.probs, index=saved.index)
        moved_a, moved_b = copy_run(alpha, "alpha moved"), copy_run(beta, "beta moved")
        for moved in (moved_a, moved_b):
            move_data(moved, root / "gone")
        config = json.loads((alpha / "config.json").read_text())
        running = lifecycle.create_run(runs_dir, config, name="still training", state="running")
        yield {"dir": runs_dir, "alpha": alpha.name, "beta": beta.name, "twin": twin.name, "other": other.name,
               "damaged": damaged.name, "old": old.name, "running": running.name, "moved_a": moved_a.name,
               "moved_b": moved_b.name}


def aligned(fixture_runs, a: str = "alpha", b: str = "beta") -> compare.Aligned:
    """What core computes from the two runs' files."""
    load = (predictions.load_predictions(fixture_runs["dir"] / fixture_runs[k]) for k in (a, b))
    return compare.align(*load)


class ComparePage(RunPage):
    """The Compare page of one AppTest session: run A picked in the sidebar, run B on the page."""

    def __init__(self, fixture_runs, a: str = "alpha", b: str | None = "beta"):
        run_b = {"compare_b": fixture_runs[b]} if b else {}
        super().__init__("views/compare.py", fixture_runs[a], **run_b)

    def chart(self):
        charts = [c for c in self.at.get("vega_lite_chart") if "compare_matrix" in c.proto.id]
        return charts[0] if charts else None

    def differences(self) -> np.ndarray:
        """The B - A counts drawn in the difference matrix, read back from the chart's own data."""
        proto = self.chart().proto
        frame = chart_frame(proto)
        counts = np.zeros((len(CLASSES), len(CLASSES)), dtype=int)
        for row in frame.itertuples():
            counts[CLASSES.index(row.true), CLASSES.index(row.pred)] = row.diff
        return counts

    def table(self):
        return self.at.dataframe[0]

    def click_square(self, true_name: str, pred_name: str) -> None:
        self.select(self.chart(), {"cell": [{"true": true_name, "pred": pred_name}]})

    def pick_row(self, row: int) -> None:
        self.select(self.table(), {"rows": [row], "columns": [], "cells": []})

    def tab_captions(self) -> tuple[list[str], list[str]]:
        """The tiles' captions shown in the two tabs: right in A, wrong in B; and wrong in A, right in B."""
        return tuple([shown(image.captions[0]) for image in tab.image] for tab in self.at.tabs)

    def all_flips(self, t: int, p: int) -> tuple[list[str], list[str]]:
        """Every tile caption of the chosen square's two tabs, paging through each with its page box."""
        groups = []
        for tab, group in enumerate(("lost", "gained")):
            key = f"compare_{group}_page_{t}_{p}"
            captions = self.tab_captions()[tab]
            pages = [box for box in self.at.number_input if box.key == key]
            for page in range(2, int(pages[0].max) + 1 if pages else 1):
                self.at.number_input(key=key).set_value(page)
                self.run()
                captions += self.tab_captions()[tab]
            groups.append(captions)
        return groups[0], groups[1]


# ---------------------------------------------------------------------------------------------
# Accuracies, the table and the matrix
# ---------------------------------------------------------------------------------------------

def test_accuracies_table_and_matrix_equal_what_core_computes_from_the_files(fixture_runs):
    page = ComparePage(fixture_runs)
    x = aligned(fixture_runs)
    acc_a, acc_b = compare.accuracies(x)
    metrics = page.at.metric
    assert [m.value for m in metrics] == [f"{acc_a:.1%}", f"{acc_b:.1%}"]
    names = unique_labels([s for s in catalog.list_runs(fixture_runs["dir"]) if s.state != "damaged"])
    assert names[fixture_runs["beta"]].startswith("beta · ")  # beta has a namesake: its label carries its time
    assert [shown(m.label) for m in metrics] == ["Run A: alpha", f"Run B: {names[fixture_runs['beta']]}"]
    assert metrics[1].delta == compare.accuracy_change(x)
    o = compare.outcome_counts(x)
    assert o.only_a + o.only_b > 0  # different seeds: the runs disagree on some pictures
    assert (f"Of the {len(x.labels):,} test pictures, {o.both:,} are right in both runs, {o.only_a:,} only in A, "
            f"{o.only_b:,} only in B and {o.neither:,} in neither.") in [c.value for c in page.at.caption]

    table = page.table().value
    class_a, class_b = compare.class_accuracies(x)
    lost, gained = compare.flip_counts(x)
    assert table["Class"].tolist() == CLASSES
    assert np.allclose(table["Run A"], 100 * class_a) and np.allclose(table["Run B"], 100 * class_b)
    assert np.allclose(table["Change"], 100 * (class_b - class_a))
    assert table["Only A right"].tolist() == np.diag(lost).tolist()
    assert table["Only B right"].tolist() == np.diag(gained).tolist()

    assert np.array_equal(page.differences(), compare.difference_counts(x))
    spec = json.loads(page.chart().proto.spec)
    scale = spec["layer"][0]["encoding"]["color"]["scale"]
    assert scale["scheme"] == "redblue" and scale["domain"][0] == -scale["domain"][1]  # symmetric around 0
    assert any("Click a square to see the pictures that flipped there." in c.value for c in page.at.caption)


# ---------------------------------------------------------------------------------------------
# Choosing a square or a class: its flipped pictures
# ---------------------------------------------------------------------------------------------

def test_a_clicked_square_shows_exactly_its_flipped_pictures(fixture_runs):
    page = ComparePage(fixture_runs)
    x = aligned(fixture_runs)
    lost, gained = compare.flip_counts(x)
    both = lost + gained
    np.fill_diagonal(both, -1)
    t, p = np.unravel_index(both.argmax(), both.shape)  # the off-diagonal square with the most flips
    assert both[t, p] > 0
    page.click_square(CLASSES[t], CLASSES[p])
    assert page.at.session_state["compare_cell"] == (CLASSES[t], CLASSES[p])
    assert f"{CLASSES[t]} taken for {CLASSES[p]}: flipped pictures" in [shown(s.value) for s in page.at.subheader]
    assert [tab.label for tab in page.at.tabs] == [f"Right in A, wrong in B: {lost[t, p]}",
                                                   f"Wrong in A, right in B: {gained[t, p]}"]
    right_in_a, right_in_b = page.all_flips(t, p)
    assert len(right_in_a) == lost[t, p] and len(right_in_b) == gained[t, p]
    assert all(c.startswith(f"True: {CLASSES[t]} · A: {CLASSES[t]} (") and f"· B: {CLASSES[p]} (" in c
               for c in right_in_a)
    assert all(c.startswith(f"True: {CLASSES[t]} · A: {CLASSES[p]} (") and f"· B: {CLASSES[t]} (" in c
               for c in right_in_b)
    spec = json.loads(page.chart().proto.spec)
    assert len(spec["layer"]) == 3  # the chosen square is outlined


def test_a_class_shows_all_its_flips_from_the_diagonal_or_the_table(fixture_runs):
    page = ComparePage(fixture_runs)
    x = aligned(fixture_runs)
    lost, gained = compare.flip_counts(x)
    c = int(np.argmax(np.diag(lost) + np.diag(gained)))
    page.click_square(CLASSES[c], CLASSES[c])
    assert f"{CLASSES[c]}: flipped pictures" in [shown(s.value) for s in page.at.subheader]
    assert page.at.session_state["compare_classes"]["selection"]["rows"] == [c]  # the table shows the class too
    right_in_a, right_in_b = page.all_flips(c, c)
    assert (len(right_in_a), len(right_in_b)) == (lost[c, c], gained[c, c])
    assert all(c_.startswith(f"True: {CLASSES[c]} · A: {CLASSES[c]} (") for c_ in right_in_a)
    assert list(page.table().proto.selection_mode)  # the table takes a row selection
    # Choosing another class in the table shows that class's flips, and its diagonal square is outlined.
    other = (c + 1) % len(CLASSES)
    page.pick_row(other)
    assert page.at.session_state["compare_cell"] == (CLASSES[other], CLASSES[other])
    assert [tab.label for tab in page.at.tabs] == [f"Right in A, wrong in B: {lost[other, other]}",
                                                   f"Wrong in A, right in B: {gained[other, other]}"]
    page.click_square(CLASSES[other], CLASSES[c])  # off the diagonal: no class row stays picked
    assert page.at.session_state["compare_classes"]["selection"]["rows"] == []


# ---------------------------------------------------------------------------------------------
# The run B picker, and what cannot be compared
# ---------------------------------------------------------------------------------------------

def test_run_b_lists_other_runs_with_test_results_and_tells_namesakes_apart(fixture_runs):
    page = ComparePage(fixture_runs)
    picker = page.at.selectbox(key="compare_b")
    labels = [shown(o) for o in picker.options]
    # beta, its namesake, other data, damaged, old and the two moved copies; neither A itself nor the running run
    assert len(labels) == len(set(labels)) == 7
    betas = [label for label in labels if label.startswith("beta · ")]
    assert len(betas) == 2 and betas[0] != betas[1]
    same_data = [label for label in labels if label.split(" · ")[0] in ("beta", "damaged", "old")]
    assert len(same_data) == 4 and labels[:4] == same_data  # runs on A's data come first


def test_runs_tested_on_other_pictures_are_refused_in_one_sentence(fixture_runs):
    page = ComparePage(fixture_runs, b="other")
    a, b = (predictions.load_predictions(fixture_runs["dir"] / fixture_runs[k]) for k in ("alpha", "other"))
    assert [w.value for w in page.at.warning] == [compare.test_set_refusal(a, b)]
    assert page.at.warning[0].value.startswith("Run A was tested on 500 pictures and run B on 15")
    assert page.chart() is None and not page.at.metric


def test_a_damaged_test_file_of_run_b_is_named(fixture_runs):
    page = ComparePage(fixture_runs, b="damaged")
    assert [shown(w.value) for w in page.at.warning] == [
        "Run B: predictions/test.npz is damaged: it cannot be read as saved predictions (ValueError)."]


def test_run_a_without_test_results_says_why(fixture_runs):
    lifecycle.update_status(fixture_runs["dir"] / fixture_runs["running"])  # a fresh heartbeat: still alive
    page = ComparePage(fixture_runs, a="running", b=None)
    assert any("still training" in m for m in page.at.info.values)
    assert page.chart() is None


def test_an_older_run_compares_too(fixture_runs):
    page = ComparePage(fixture_runs, a="old")
    x = aligned(fixture_runs, "old", "beta")
    assert page.table().value["Class"].tolist() == CLASSES  # names from its data, as meta.json has none
    assert np.array_equal(page.differences(), compare.difference_counts(x))


def test_a_single_run_has_nothing_to_compare_with(fixture_runs, tmp_path, monkeypatch):
    alone = tmp_path / "runs"
    shutil.copytree(fixture_runs["dir"] / fixture_runs["alpha"], alone / fixture_runs["alpha"])
    monkeypatch.setenv("CIFAR_RUNS_DIR", str(alone))
    page = ComparePage(fixture_runs, b=None)
    assert page.at.info.values == [
        "There is no other run with final test results to compare run A with: train another run on the same data, "
        "then come back here."]


def test_pictures_come_from_run_b_when_run_as_data_is_not_here_and_numbers_stay_without_either(fixture_runs):
    page = ComparePage(fixture_runs, a="moved_a", b="beta")
    lost, gained = compare.flip_counts(aligned(fixture_runs, "moved_a", "beta"))
    c = int(np.argmax(np.diag(lost)))
    page.click_square(CLASSES[c], CLASSES[c])
    assert not page.at.warning and len(page.tab_captions()[0]) == min(lost[c, c], 24)  # B's data has them

    page = ComparePage(fixture_runs, a="moved_a", b="moved_b")
    assert any("cannot be loaded on this machine" in w for w in page.at.warning.values)
    page.click_square(CLASSES[c], CLASSES[c])
    assert not page.at.image
    tile_captions = [shown(x.value) for x in page.at.tabs[0].caption if x.value.startswith("True: ")]
    assert len(tile_captions) == min(lost[c, c], 24)  # the captions stand in for the pictures
