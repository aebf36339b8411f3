"""The benchmark end to end on tiny synthetic data: both modes print their table and write their files.

No timing assertions: the numbers depend on the machine and its load; only their presence and sanity are checked.
"""
from __future__ import annotations

import io
import json

import pytest

from core.bench import cli, measure, report
from core.rundir import catalog, records
from tests.helpers import train_tiny_run

GPU_MODE_SMOKE = ["--data", "synthetic", "--rows", "quick-demo,tutorial-way", "--epochs", "1", "--seeds", "1",
                  "--limit", "200", "--device", "cpu", "--workers", "2"]


def _table_lines(text: str) -> list[list[str]]:
    rows = [line for line in text.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in rows]


def test_gpu_mode_prints_the_table_for_engine_and_tutorial_rows(tmp_path):
    out = io.StringIO()
    code = cli.main([*GPU_MODE_SMOKE, "--out", str(tmp_path / "bench")], stream=out)
    assert code == 0, out.getvalue()
    table = _table_lines(out.getvalue())
    assert tuple(table[0]) == report.COLUMNS
    body = {cells[0]: dict(zip(report.COLUMNS, cells)) for cells in table[2:]}
    assert set(body) == {"quick-demo", "tutorial-way"}
    assert body["quick-demo"]["how"] == "engine" and body["tutorial-way"]["how"] == "tutorial"
    for cells in body.values():
        assert cells["model"] in ("fastnet-small", "elu-convnet") and cells["seeds"] == "1"
        assert 0.0 <= float(cells["test acc %"]) <= 100.0
        for column in ("train s", "img/s", "wall s", "peak MiB"):
            assert float(cells[column].replace(",", "")) > 0, column
    assert "device: cpu" in out.getvalue() and "command: python -m core.bench" in out.getvalue()

    payload = json.loads((tmp_path / "bench.json").read_text())
    assert [r["key"] for r in payload["rows"]] == ["quick-demo", "tutorial-way"]
    engine = payload["rows"][0]
    assert engine["settings"]["model"] == "fastnet-small" and engine["settings"]["epochs"] == 1
    assert engine["settings"]["val_fraction"] == 0.0, "table rows train on the whole training split"
    assert len(engine["runs"]) == 1 and 0.0 <= engine["test_acc_mean"] <= 1.0
    assert (tmp_path / "bench.md").read_text() == out.getvalue()


def test_cpu_mode_compares_the_command_line_with_a_watched_dashboard_run(tmp_path):
    out = io.StringIO()
    code = cli.main(["--cpu", "--data", "synthetic", "--epochs", "1", "--seeds", "1", "--limit", "300",
                       "--runs-dir", str(tmp_path / "runs")], stream=out)
    assert code == 0, out.getvalue()
    body = [dict(zip(report.COLUMNS, cells)) for cells in _table_lines(out.getvalue())[2:]]
    assert [(r["row"], r["how"]) for r in body] == [("quick-demo", "command line"),
                                                     ("quick-demo", "dashboard (watched)")]
    # Same seed and data on the CPU: the two ways train the very same run.
    assert body[0]["test acc %"] == body[1]["test acc %"]
    text = out.getvalue()
    assert "quick-demo on CPU: mean test accuracy" in text and "watched from the dashboard vs command line" in text
    # The preset is trained as users get it (its validation split included); both runs are kept.
    kept = catalog.list_runs(tmp_path / "runs")
    assert len(kept) == 2 and all(s.state == "completed" for s in kept)
    assert all(s.config["val_fraction"] == 0.1 and s.config["model"] == "fastnet-small" for s in kept)


def test_training_seconds_come_from_the_run_records_even_without_a_validation_split(tmp_path):
    run = train_tiny_run(tmp_path, epochs=2, val_fraction=0.0)
    m = measure.measure_run_dir(run.run_dir, measure.Measurement(seed=0))
    epochs = [r for r in catalog.read_metrics(run.run_dir) if r["kind"] == "val"]
    assert len(epochs) == 2 and all(r["seconds"] > 0 and r["images_per_s"] > 0 for r in epochs)
    test_s = records.read_json(run.run_dir / "test_summary.json")["seconds"]
    assert m.error is None and m.test_acc == pytest.approx(run.test_acc)
    assert m.train_s == pytest.approx(sum(r["seconds"] for r in epochs) + test_s)
    assert m.images_per_s == pytest.approx(2 * 2000 / sum(r["seconds"] for r in epochs), rel=1e-6)


@pytest.mark.parametrize("args, words", [
    (["--rows", "nope"], "choose from"),
    (["--cpu", "--rows", "tutorial-way"], "choose from"),
    (["--seeds", "0"], "--seeds must be at least 1"),
    (["--data", "/no/such/folder", "--rows", "quick-demo", "--epochs", "1", "--seeds", "1"], "does not exist"),
])
def test_bad_input_is_one_sentence(args, words, capsys):
    assert cli.main(args, stream=io.StringIO()) == 1
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err


def test_table_cells_show_mean_and_spread_and_count_failed_seeds():
    result = measure.RowResult("quick-demo", "t", "fastnet-small", "engine", {}, runs=[
        measure.Measurement(seed=0, test_acc=0.80, train_s=10.0, images_per_s=100.0, wall_s=12.0, peak_mib=5.0),
        measure.Measurement(seed=1, test_acc=0.82, train_s=12.0, images_per_s=120.0, wall_s=14.0, peak_mib=6.0),
        measure.Measurement(seed=2, error="out of memory: try a smaller batch size"),
    ])
    cells = dict(zip(report.COLUMNS, report.table_rows([result])[0]))
    assert cells["seeds"] == "2 (1 failed)"
    assert cells["test acc %"] == "81.00 ± 1.41" and cells["train s"] == "11.00 ± 1.41"
    assert cells["peak MiB"] == "6" and cells["warm-up s"] == "-"


def test_check_resume_stops_after_the_first_epoch_and_the_resumed_run_matches_one_without_a_stop(tmp_path):
    out = io.StringIO()
    code = cli.main(["--check-resume", "--data", "synthetic", "--limit", "300", "--device", "cpu",
                     "--runs-dir", str(tmp_path / "runs")], stream=out)
    line = out.getvalue()
    assert code == 0 and "stopped after epoch 1, resumed to completed" in line and line.endswith("passed.\n"), line
    # On the CPU a resume is exact: the same seed gives the same accuracy with or without the stop.
    resumed, whole = sorted(catalog.list_runs(tmp_path / "runs"), key=lambda s: s.name)
    assert (resumed.name, whole.name) == ("resume-check-stopped", "resume-check-whole")
    assert resumed.state == whole.state == "completed"
    assert resumed.status["test_acc"] == whole.status["test_acc"]


def test_the_sweeps_page_bench_builds_what_it_names_and_the_page_shows_it(tmp_path, monkeypatch):
    """`python -m dashboard.bench_sweeps`'s folders, small: the sweeps it lists and the trials it shows."""
    from core.sweep import list_sweeps, read_results
    from dashboard import bench_sweeps

    many, big = tmp_path / "many", tmp_path / "big"
    bench_sweeps.many_sweeps(many, count=3)
    bench_sweeps.thousand_trials(big, trials=4)
    sweeps = list_sweeps(many)
    assert len(sweeps) == 3 and all(s.problem is None and len(s.space) == 12 for s in sweeps)
    (sweep,) = list_sweeps(big)
    assert [t.state for t in read_results(sweep, big).trials] == ["completed"] * 4
    monkeypatch.setenv("CIFAR_RUNS_DIR", str(big))  # time_page points the page there: undone after the test
    first, later = bench_sweeps.time_page(big, refreshes=1)
    assert first > 0 and len(later) == 1
