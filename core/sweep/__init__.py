"""Hyperparameter sweeps on Optuna: every trial is a normal run in runs/, ranked by validation accuracy.

`python -m core.sweep create|work|status|stop|list` (core/sweep/__main__.py); `space` holds the search space
and its checks, `study` the sweep folder and its Optuna study, `worker` the trial loop, `results` what the
Sweeps page and `status` show.
"""
from core.sweep.results import SweepResults, TrialResult, TrialStatus, read_results
from core.sweep.space import Param, SweepError, check_space, parse_param, tunable_fields
from core.sweep.study import PRUNERS, SAMPLERS, DamagedSweep, Sweep, create_sweep, list_sweeps, load_sweep, sweep_path
from core.sweep.worker import reap_dead_trials, work

__all__ = [
    "PRUNERS", "SAMPLERS", "DamagedSweep", "Param", "Sweep", "SweepError", "SweepResults", "TrialResult", "TrialStatus",
    "check_space", "create_sweep", "list_sweeps", "load_sweep", "parse_param", "read_results", "reap_dead_trials",
    "sweep_path", "tunable_fields", "work",
]
