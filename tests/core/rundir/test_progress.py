"""How far a run has come, from its status (core.rundir.progress)."""
from core.rundir.progress import Progress, run_progress


def test_progress_numbers():
    status = {"progress": 0.25, "epoch": 1, "epochs": 4, "step": 10, "total_steps": 40, "eta_seconds": 90}
    assert run_progress(status, "running") == Progress("running", 0.25, 2, 4, 10, 40, 90.0)  # epoch 2 under way
    assert run_progress({**status, "progress": 0.99}, "completed").fraction == 1.0
    assert run_progress(status, "stopped") == Progress("stopped", 0.25, 1, 4, 10, 40, None)  # no time left to wait
    assert run_progress({"progress": 7}, "running").fraction == 1.0 and run_progress({}, "queued").fraction == 0.0
