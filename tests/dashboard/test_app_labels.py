"""The Possibly mislabelled page driven by AppTest: the ranking shown equals core.analysis.label_issues on the saved
files, the filter by given class, planted label errors, and runs made before the page existed."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from core.analysis import kfold, label_issues
from core.rundir import catalog, layout, lifecycle, predictions
from core.rundir.state import LIVE_STATES
from dashboard.wording import format_duration
from tests.helpers import RunPage, app_runs_folder, shown, train_tiny_run, wait_for

PER_PAGE = 24
PLANTED = {7: (3, 0.01), 40: (5, 0.03), 123: (3, 0.05)}  # position: (suggested class, given label's probability)


@pytest.fixture(scope="module")
def fixture_runs(tmp_path_factory):
    """runs/ with a tiny trained run, a copy with planted label errors, an old-style copy and a queued run."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with app_runs_folder(tmp_path_factory) as folder:
            trained = train_tiny_run(folder, name="labels", epochs=1).run_dir
            yield {"trained": trained, "planted": planted_copy(trained), "old": old_copy(trained),
                   "kfold": plain_copy(trained, "kfold"), "stopped": plain_copy(trained, "stopped"),
                   "queued": lifecycle.create_run(folder, json.loads((trained / "config.json").read_text()),
                                             name="waiting")}
    finally:
        torch.set_num_threads(threads)


def planted_copy(run: Path) -> Path:
    """A copy whose test probabilities agree with every label (91%) except at the PLANTED pictures."""
    target = run.parent / f"{run.name}-planted"
    shutil.copytree(run, target)
    saved = predictions.load_predictions(run, "test")
    n, c = saved.probs.shape
    probs = np.full((n, c), 0.01, dtype=np.float32)
    probs[np.arange(n), saved.labels] = 0.91
    for pos, (suggested, self_conf) in PLANTED.items():
        assert saved.labels[pos] != suggested
        probs[pos] = (1 - 0.92 - self_conf) / (c - 2)
        probs[pos, suggested], probs[pos, saved.labels[pos]] = 0.92, self_conf
    predictions.save_test_predictions(target, saved.labels, probs, np.zeros(n, np.float32), saved.index)
    return target


def plain_copy(run: Path, suffix: str) -> Path:
    target = run.parent / f"{run.name}-{suffix}"
    shutil.copytree(run, target)
    return target


def old_copy(run: Path) -> Path:
    """A copy as runs were before meta.json: class names come from the test summary or the data."""
    target = run.parent / f"{run.name}-old"
    shutil.copytree(run, target)
    (target / "meta.json").unlink()
    return target


class LabelsPage(RunPage):
    """The Possibly mislabelled page of one AppTest session looking at one run."""

    def __init__(self, run: Path):
        super().__init__("views/labels.py", run.name)

    def table(self):
        return self.at.container("labels_table").dataframe[0].value

    def tiles(self) -> list[str]:
        return [shown(image.captions[0]) for image in self.at.container("labels_tiles").image]

    def text(self) -> str:
        """The page's markdown and captions as one string, bold markers kept."""
        return " ".join(shown(m.value) for m in [*self.at.markdown, *self.at.caption])


def core_issues(run: Path, ranking: str = "self_confidence"):
    saved = predictions.load_predictions(run, "test")
    return saved, label_issues.find_label_issues(saved.probs, saved.labels, ranking)


def classes_of(run: Path) -> list[str]:
    return json.loads((run / "meta.json").read_text())["classes"]


def expected_captions(issues, rows, classes) -> list[str]:
    return [f"Given: {classes[issues.given[r]]} · Suggested: {classes[issues.suggested[r]]} · "
            f"{issues.suggested_prob[r]:.0%} sure" for r in rows[:PER_PAGE]]


@pytest.mark.parametrize("ranking", label_issues.RANKINGS)
def test_the_ranking_shown_equals_core_on_the_files(fixture_runs, ranking):
    run = fixture_runs["trained"]
    saved, issues = core_issues(run, ranking)
    assert len(issues.positions) > 0  # a one-epoch model doubts some labels: the page has something to show
    page = LabelsPage(run)
    page.at.radio(key="labels_ranking").set_value(ranking)
    page.run()
    classes, first = classes_of(run), np.arange(min(PER_PAGE, len(issues.positions)))
    assert page.at.metric[0].value == f"{len(issues.positions):,} of {len(saved.labels):,} test pictures"
    table = page.table()
    assert table["Picture"].tolist() == saved.index[issues.positions[first]].tolist()
    assert table["Given"].tolist() == [classes[k] for k in issues.given[first]]
    assert table["Suggested"].tolist() == [classes[k] for k in issues.suggested[first]]
    assert np.allclose(table["Score"], issues.scores[first])
    assert page.tiles() == expected_captions(issues, first, classes)
    assert "54 of CIFAR-10's 10,000 test labels" in page.text()


def test_planted_label_errors_are_listed_most_suspicious_first(fixture_runs):
    run = fixture_runs["planted"]
    page = LabelsPage(run)
    saved, classes = predictions.load_predictions(run, "test"), classes_of(run)
    assert page.at.metric[0].value == f"3 of {len(saved.labels):,} test pictures"
    table = page.table()
    assert table["Picture"].tolist() == saved.index[[7, 40, 123]].tolist()  # lowest given-label probability first
    assert table["Suggested"].tolist() == [classes[3], classes[5], classes[3]]
    assert table["Given"].tolist() == [classes[saved.labels[p]] for p in (7, 40, 123)]
    assert page.tiles()[0] == f"Given: {classes[saved.labels[7]]} · Suggested: {classes[3]} · 92% sure"


def test_the_given_class_filter_keeps_the_ranking(fixture_runs):
    run = fixture_runs["trained"]
    saved, issues = core_issues(run)
    classes = classes_of(run)
    chosen = int(np.bincount(issues.given).argmax())  # the class with the most suspects
    page = LabelsPage(run)
    page.at.selectbox(key="labels_given").set_value(classes[chosen])
    page.run()
    rows = np.flatnonzero(issues.given == chosen)
    assert f"{len(rows):,} pictures given the label {classes[chosen]}, the most suspicious first." in page.text()
    assert page.table()["Picture"].tolist() == saved.index[issues.positions[rows[:PER_PAGE]]].tolist()
    assert set(page.table()["Given"]) == {classes[chosen]}
    assert page.tiles() == expected_captions(issues, rows, classes)


def test_a_class_without_suspects_says_so(fixture_runs):
    run = fixture_runs["planted"]
    saved, classes = predictions.load_predictions(run, "test"), classes_of(run)
    clean = next(k for k in range(len(classes)) if k not in saved.labels[[7, 40, 123]])
    page = LabelsPage(run)
    page.at.selectbox(key="labels_given").set_value(classes[clean])
    page.run()
    assert page.at.info.values == [f"No picture given the label {classes[clean]} looks mislabelled; pick "
                                   "another class."]


def test_a_run_from_before_this_page_shows_the_same_list(fixture_runs):
    run = fixture_runs["old"]
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    saved, issues = core_issues(run)
    page = LabelsPage(run)
    first = np.arange(min(PER_PAGE, len(issues.positions)))
    assert page.table()["Picture"].tolist() == saved.index[issues.positions[first]].tolist()
    assert page.tiles() == expected_captions(issues, first, classes_of(fixture_runs["trained"]))
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before  # nothing written into the run


def test_a_run_without_test_results_gets_one_sentence(fixture_runs):
    page = LabelsPage(fixture_runs["queued"])
    assert page.at.info.values == ["This run is waiting to start: its test results are saved when its training "
                                   "finishes.",
                                   "Wait until this run has finished: the K-fold runs copy its settings and time."]
    assert not page.at.metric and not any(b.key == "labels_kfold_start" for b in page.at.button)


# ---------------------------------------------------------------------------------------------
# K-fold: out-of-fold answers on the training pictures
# ---------------------------------------------------------------------------------------------

def fold_states(run: Path) -> list[str]:
    job = kfold.read_job(run)
    return [s.state for s in kfold.progress(job, run.parent)]


def test_training_pictures_need_the_k_fold_runs_and_the_time_is_stated(fixture_runs):
    run = fixture_runs["trained"]
    page = LabelsPage(run)
    page.at.segmented_control(key="labels_split").set_value("train")
    page.run()
    assert "Out-of-fold answers can: start the K-fold runs below" in page.at.info.values[0]
    summary = catalog.summarize_run(run)
    expected = format_duration(kfold.estimate_seconds(summary, 5))
    assert ("This trains 5 quick runs with this run's settings, one after the other, each on 4/5 of the training "
            "pictures for 1 epoch") in page.text()
    assert f"so expect about {expected} in all" in page.text()
    page.at.number_input(key="labels_folds").set_value(3)
    page.run()
    assert f"so expect about {format_duration(kfold.estimate_seconds(summary, 3))} in all" in page.text()


def test_k_fold_runs_start_finish_and_their_training_list_equals_core(fixture_runs):
    run = fixture_runs["kfold"]
    page = LabelsPage(run)
    page.at.number_input(key="labels_folds").set_value(2)
    page.run()
    page.at.button(key="labels_kfold_start").click()
    page.run()
    assert len(kfold.read_job(run).run_ids) == 2
    wait_for(lambda: fold_states(run) == ["completed", "completed"], timeout=300)
    page.run()  # the progress sees both finished and combines their answers
    assert layout.out_of_fold(run).is_file()
    page.run()
    assert "Made by 2 K-fold runs." in page.text()
    page.at.segmented_control(key="labels_split").set_value("train")
    page.run()
    oof = kfold.load_oof(run)
    issues = label_issues.find_label_issues(oof.probs, oof.labels)
    assert page.at.metric[0].value == f"{len(issues.positions):,} of {len(oof.labels):,} training pictures"
    first = np.arange(min(PER_PAGE, len(issues.positions)))
    if len(first):
        assert page.table()["Picture"].tolist() == issues.positions[first].tolist()
        assert page.tiles() == expected_captions(issues, first, classes_of(run))


def test_k_fold_runs_can_be_stopped(fixture_runs):
    run = fixture_runs["stopped"]
    page = LabelsPage(run)
    page.at.number_input(key="labels_folds").set_value(4)
    page.run()
    page.at.button(key="labels_kfold_start").click()
    page.run()
    page.at.button(key="labels_kfold_stop").click()
    page.run()
    wait_for(lambda: not any(s in LIVE_STATES for s in fold_states(run)), timeout=120)
    page.run()
    assert "stopped" in fold_states(run)
    assert any("Not every K-fold run finished" in w for w in page.at.warning.values)
    assert not layout.out_of_fold(run).exists()
    assert page.at.button(key="labels_kfold_start")  # offered again
