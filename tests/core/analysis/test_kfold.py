"""core.analysis.kfold and the K-fold split: K quick runs hold out every training picture once, and their held-out
predictions combine into the parent's predictions/oof_train.npz."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from core.analysis import kfold, label_issues
from core.data import load_dataset
from core.data.sets import DataError, ImageSet
from core.data.split import split_fold
from core.jobs import JobManager
from core.rundir import catalog, lifecycle, predictions, records
from core.rundir.config import TrainConfig
from core.rundir.records import PredictionsError
from tests.helpers import tiny_config, train_tiny_run


@pytest.fixture(scope="module")
def fold_runs(tmp_path_factory):
    """A parent run and its two fold runs (tiny, one epoch each, on the synthetic data)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        folder = tmp_path_factory.mktemp("kfold")
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("CIFAR_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
            parent = train_tiny_run(folder, name="parent", epochs=1).run_dir
            configs = kfold.plan_folds(TrainConfig.from_dict(records.read_json(parent / "config.json")), 2)
            folds = [train_tiny_run(folder, name=f"fold{k}", **{**c.to_dict(), "device": "cpu"}).run_dir
                     for k, c in enumerate(configs)]
            yield parent, folds
    finally:
        torch.set_num_threads(threads)


def test_folds_hold_out_every_picture_once_with_every_class():
    labels = np.repeat(np.arange(4), 6)
    train = ImageSet(np.zeros((24, 32, 32, 3), np.uint8), labels, np.arange(24))
    held = [split_fold(train, 3, k, seed=1)[1] for k in range(3)]
    assert sorted(np.concatenate([h.index for h in held]).tolist()) == list(range(24))
    assert all(np.bincount(h.labels, minlength=4).tolist() == [2, 2, 2, 2] for h in held)
    kept, out = split_fold(train, 3, 0, seed=1)
    assert not set(kept.index) & set(out.index) and len(kept) + len(out) == 24


def test_too_many_folds_for_the_smallest_class_is_one_sentence():
    train = ImageSet(np.zeros((6, 32, 32, 3), np.uint8), np.array([0, 0, 0, 1, 1, 1]), np.arange(6))
    with pytest.raises(DataError, match="smallest class has 3 pictures, too few to split into 4 folds"):
        split_fold(train, 4, 0, seed=0)


def test_plan_changes_only_the_fold():
    parent = tiny_config(early_stopping=2, val_fraction=0.2)
    configs = kfold.plan_folds(parent, 3)
    assert [(c.folds, c.fold) for c in configs] == [(3, 0), (3, 1), (3, 2)]
    assert all(c.replace(folds=0, fold=0, early_stopping=2) == parent for c in configs)


@pytest.mark.parametrize("folds", [1, 21, 2.5, True])
def test_a_bad_number_of_folds_is_refused(folds):
    with pytest.raises(ValueError, match="number of folds must be a whole number from 2 to 20"):
        kfold.plan_folds(tiny_config(), folds)


@pytest.mark.parametrize("changes, words", [(dict(folds=1), "folds must be 0 \\(off\\) or between 2 and 20"),
                                            (dict(folds=3, fold=3), "fold must be between 0 and folds - 1"),
                                            (dict(fold=1), "fold must be between 0 and folds - 1")])
def test_config_checks_folds(changes, words):
    with pytest.raises(ValueError, match=words):
        tiny_config(**changes)


def test_estimate_uses_the_parents_seconds_per_epoch(tmp_path):
    summary = catalog.RunSummary("r", tmp_path, "r", "completed", epoch=4, duration_s=40.0,
                              config={"epochs": 4, "val_fraction": 0.1})
    # 5 folds x 4 epochs x 10 s, each epoch on 80% instead of 90% of the training pictures.
    assert kfold.estimate_seconds(summary, 5) == pytest.approx(5 * 4 * 10 * 0.8 / 0.9)
    assert kfold.estimate_seconds(catalog.RunSummary("q", tmp_path, "q", "queued", config={"epochs": 4}), 5) is None


def test_fold_runs_combine_into_out_of_fold_training_predictions(fold_runs):
    parent, folds = fold_runs
    path = kfold.combine_folds(parent, folds)
    assert path == parent / "predictions" / "oof_train.npz"
    oof = kfold.load_oof(parent)
    train = load_dataset("synthetic").train
    assert len(oof.labels) == len(train) and np.array_equal(oof.labels, train.labels)
    for fold in folds:
        held = predictions.load_predictions(fold, "val", predictions.val_epochs(fold)[-1])
        assert np.allclose(oof.probs[held.index], held.probs, atol=1e-3)  # stored as float16
    issues = label_issues.find_label_issues(oof.probs, oof.labels)
    assert set(issues.positions) <= set(range(len(train)))


def test_folds_that_overlap_are_not_combined(fold_runs, tmp_path):
    parent, folds = fold_runs
    with pytest.raises(PredictionsError, match="exactly once"):
        kfold.combine_folds(tmp_path, [folds[0], folds[0]])
    assert not (tmp_path / "predictions" / "oof_train.npz").exists()


def test_a_job_file_round_trips_and_a_foreign_one_is_none(tmp_path):
    kfold.save_job(tmp_path, kfold.FoldJob(2, ["a", "b"]))
    assert kfold.read_job(tmp_path) == kfold.FoldJob(2, ["a", "b"])
    (tmp_path / "predictions" / "kfold.json").write_text('{"folds": 3, "runs": ["a"]}')
    assert kfold.read_job(tmp_path) is None


def _summary(state: str) -> catalog.RunSummary:
    return catalog.RunSummary(state, None, state, state)


@pytest.mark.parametrize("states, expected", [
    (["completed", "completed"], "completed"),
    (["completed", "queued"], "running"),
    (["running", None], "running"),  # a deleted fold does not end a job that still trains
    (["completed", None], "ended"),
    (["completed", "stopped"], "ended"),
    (["interrupted", "failed"], "ended"),
])
def test_the_job_state_of_the_fold_runs(states, expected):
    summaries = [None if s is None else _summary(s) for s in states]
    assert kfold.job_state(summaries) == expected and isinstance(kfold.job_state(summaries), kfold.FoldJobState)


def test_the_conductor_queues_the_fold_runs_notes_them_and_stops_them_all(tmp_path):
    """JobManager.start_kfold puts the K planned runs in the device queue and the parent's record;
    stop_kfold stops the one training and takes the waiting ones out (they never started: nothing is left)."""
    manager = JobManager(tmp_path)
    parent = catalog.summarize_run(lifecycle.create_run(tmp_path, tiny_config(epochs=3).to_dict(), name="parent",
                                                      state="completed"))
    job = manager.start_kfold(parent, 3)
    assert kfold.read_job(parent.path) == job and len(job.run_ids) == 3
    assert manager.active_ids() == job.run_ids
    names = [catalog.summarize_run(catalog.run_path(tmp_path, i)).name for i in job.run_ids]
    assert names == ["parent fold 1 of 3", "parent fold 2 of 3", "parent fold 3 of 3"]
    manager.stop_kfold(job)
    assert manager.wait(120) and manager.active_ids() == []
    left = [catalog.summarize_run(catalog.run_path(tmp_path, i)) for i in job.run_ids
            if catalog.run_path(tmp_path, i).exists()]
    assert [s.state for s in left] in ([], ["stopped"])  # one may have started before the stop reached it
    assert kfold.job_state(kfold.progress(job, tmp_path)) == "ended"
