"""The training engine: `train(cfg, run_dir, stop=..., device=...)` trains one run and streams it to disk.

No UI: the command line (`python -m core.train`, see core/train.py), the dashboard's job manager and the
tests all call `train`. The stop flag is checked every step; metrics stay on the device and leave it
once per logging interval; everything the run produces goes through core.rundir (file names from its
layout, states from RunState), and the end-of-run feature map through core.training.feature_map.

Under torchrun every rank calls `train` with its `team` (core.training.distributed): the hooks named `team.*`
shard the data, average gradients and metrics, agree on stops and hand rank 0's decisions to the others;
only the writer (rank 0, or the one process of a plain run) touches the run folder.
"""
from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from core.data import DataError
from core.rundir import catalog, checkpoints, files, layout, lifecycle, predictions, records
from core.rundir.config import TrainConfig
from core.rundir.state import RunState
from core.training.device import describe_device, resolve_device, synchronize, use_fastest_kernels
from core.training.distributed import SOLO, Solo
from core.training.feature_map import FeaturesStopped, write_features
from core.training.inference import Evaluation, autocast, class_accuracy, evaluate, images_to_tensor
from core.training.models import check_model_name
from core.training.reporting import NoMetrics, SilentReporter, StatusReporter
from core.training.schedules import lr_at
from core.training.session import Session

log = logging.getLogger(__name__)

OOM_MESSAGE = "out of memory: try a smaller batch size"
DIVERGED_MESSAGE = "training diverged (the loss became NaN or infinite): lower the learning rate"
STATUS_INTERVAL_S = 1.0  # how often progress/heartbeat reach status.json
# A first epoch whose first half took at least this long also saves the validation answers at its half (the live
# view's first matrix, after half an epoch instead of a whole one); a GPU's few-second epochs never do.
FIRST_LOOK_AFTER_S = 5.0


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    state: RunState  # completed, stopped, pruned or failed
    epochs_done: int
    best_val_acc: float | None
    test_acc: float | None
    error: str | None = None


# ---------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------

class _Stopped(Exception):
    pass


class _Pruned(Exception):
    pass


def train(cfg: TrainConfig, run_dir: Path, *, stop: threading.Event | None = None,
          device: torch.device | None = None, resume: bool = False,
          on_status: Callable[[dict[str, Any]], None] | None = None,
          on_epoch: Callable[[int, dict[str, Any]], bool] | None = None, team: Solo = SOLO) -> RunResult:
    """Train the run in `run_dir` (made by `lifecycle.create_run`) to the end, a stop request or an error.

    `on_epoch(epoch, val_metrics)` is called after every epoch but the last; when it returns True the run
    ends "pruned" (a sweep's pruner judged it hopeless): it keeps its checkpoints and skips the final test.
    Never raises for a training failure: the run ends as "failed" with a one-sentence error in
    status.json, and the result says so. Earlier runs and this run's checkpoints are never touched.
    `team`: this process's place in a torchrun group; only its writer writes, and only it calls `on_epoch`
    (the others follow its answer). A rank other than the writer returns test_acc None.
    """
    run_dir = Path(run_dir)
    stop = stop or threading.Event()
    reporter = (StatusReporter(run_dir, on_status, STATUS_INTERVAL_S) if team.is_writer
                else SilentReporter(run_dir, None, STATUS_INTERVAL_S))
    session = writer = None
    try:
        device = device or resolve_device(cfg.device)
        use_fastest_kernels(device)
        _report_running(reporter, device, resume, team)
        session = _open_session(cfg, run_dir, device, resume, team)
        # opened after a resume has trimmed the file it appends to
        writer = lifecycle.MetricsWriter(run_dir) if team.is_writer else NoMetrics()
        _fit(session, writer, reporter, stop, on_epoch, team)
        test_acc = _final_test(session, writer) if team.is_writer else None
        if cfg.feature_map and team.is_writer:
            _save_features(session, stop)
        reporter.update(state=RunState.COMPLETED, finished_at=time.time(), progress=1.0, eta_seconds=0.0,
                        test_acc=test_acc, **_position(session))
        return _result(run_dir, session, RunState.COMPLETED, test_acc)
    except (_Stopped, _Pruned) as ending:
        state = RunState.PRUNED if isinstance(ending, _Pruned) else RunState.STOPPED
        reporter.update(state=state, finished_at=time.time(), eta_seconds=None, **_position(session))
        return _result(run_dir, session, state, None)
    except Exception as exc:  # every failure ends the run cleanly with one sentence
        error = _error_sentence(exc)
        if not isinstance(exc, (ValueError, OSError, torch.OutOfMemoryError)) and not files.is_disk_full(exc):
            log.exception("run %s failed", run_dir.name)
        _close(writer)  # before the last status: on a full disk, its unwritten buffer must not fail again
        writer = None
        reporter.report_failure(state=RunState.FAILED, finished_at=time.time(), eta_seconds=None, error=error,
                                **_position(session))
        return _result(run_dir, session, RunState.FAILED, None, error)
    finally:
        _close(writer)


def _report_running(reporter: StatusReporter, device: torch.device, resume: bool, team: Solo) -> None:
    started = {} if resume else {"started_at": time.time()}  # a resumed run keeps its first start
    reporter.update(state=RunState.RUNNING, finished_at=None, error=None, device=team.describe(describe_device(device)),
                    processes=team.size, pid=os.getpid(), host=socket.gethostname(), **started)


def _open_session(cfg: TrainConfig, run_dir: Path, device: torch.device, resume: bool, team: Solo) -> Session:
    """The run's data, model and optimiser, from last.pt on a resume, ready for the team to train."""
    session = Session(cfg, run_dir, device, team)
    if team.is_writer:
        lifecycle.record_classes(run_dir, session.classes)
    _start_or_resume(session, resume, team)
    team.wrap(session)  # after the weights are set: DDP starts every rank from the writer's
    return session


def _close(writer: lifecycle.MetricsWriter | None) -> None:
    if writer is not None:
        try:
            writer.close()
        except OSError as exc:  # the disk filled up: what could not be flushed is lost, the rest stays
            log.warning("could not flush the last metrics records: %s", files.disk_error_sentence(exc))


class Diverged(ArithmeticError):
    """The training loss became NaN or infinite: carrying on would only spread it to every weight."""


def _error_sentence(exc: BaseException) -> str:
    if isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower():
        return OOM_MESSAGE
    if isinstance(exc, Diverged):
        return DIVERGED_MESSAGE
    if isinstance(exc, OSError) or files.is_disk_full(exc):  # numpy or torch may say "disk full" their own way
        return files.disk_error_sentence(exc)
    if isinstance(exc, (ValueError, DataError)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _position(session: Session | None) -> dict[str, int]:
    """The final step and epoch for status.json (the once-a-second updates may have missed the last)."""
    if session is None:
        return {}
    return {"step": session.progress.step, "epoch": session.progress.epoch}


def _result(run_dir: Path, session: Session | None, state: RunState, test_acc: float | None,
            error: str | None = None) -> RunResult:
    if session is None:  # failed before training began (bad data source, unavailable device)
        return RunResult(run_dir, state, 0, None, None, error)
    p = session.progress
    return RunResult(run_dir, state, p.epoch, p.best_val_acc, test_acc, error)


def _start_or_resume(s: Session, resume: bool, team: Solo) -> None:
    if resume:  # every rank loads last.pt
        s.restore(checkpoints.load_checkpoint(layout.checkpoint(s.run_dir, "last")))
        if team.is_writer:
            lifecycle.truncate_metrics(s.run_dir, s.progress.step)
        return
    s.init_model_from_data()
    if len(s.val_set) and team.is_writer:
        predictions.save_val_labels(s.run_dir, s.val_set.labels, s.val_set.index)


def _fit(s: Session, writer: lifecycle.MetricsWriter, reporter: StatusReporter, stop: threading.Event,
         on_epoch: Callable[[int, dict[str, Any]], bool] | None, team: Solo) -> None:
    cfg, p = s.cfg, s.progress
    steps_per_epoch = len(s.loader)
    total_steps = cfg.epochs * steps_per_epoch
    reporter.begin(p.step, total_steps, cfg.epochs)
    while p.epoch < cfg.epochs and not p.stopped_early:
        epoch_start = time.perf_counter()
        images_seen = _train_epoch(s, writer, reporter, stop, steps_per_epoch, team) * team.size
        synchronize(s.device)  # once an epoch, so its seconds include the queued GPU work
        seconds = time.perf_counter() - epoch_start
        p.epoch, p.batch = p.epoch + 1, 0
        pruned, decisions = team.from_writer(lambda: _end_epoch(s, writer, reporter, on_epoch, images_seen, seconds))
        if not team.is_writer:  # the writer validated: every rank now holds its best, plateau and early stop
            s.load_trackers(decisions)
        if pruned:
            raise _Pruned


def _end_epoch(s: Session, writer: lifecycle.MetricsWriter, reporter: StatusReporter,
               on_epoch: Callable[[int, dict[str, Any]], bool] | None, images_seen: int,
               seconds: float) -> tuple[bool, dict[str, Any]]:
    """The writer's epoch end: validate, checkpoint, record. Returns (pruned, the trackers it decided)."""
    cfg, p = s.cfg, s.progress
    val, improved = _validate(s)
    # last.pt first: a kill between the two writes must still leave a resumable run.
    checkpoints.save_checkpoint(s.run_dir, "last", s.checkpoint(val))
    if improved:
        checkpoints.copy_checkpoint(s.run_dir, "last", "best")
    writer.write([{"kind": "val", "epoch": p.epoch, "step": p.step, **val, "seconds": seconds,
                   "images_per_s": images_seen / seconds if seconds > 0 else None, "time": time.time()}])
    reporter.update(epoch=p.epoch, best_val_acc=p.best_val_acc)
    pruned = on_epoch is not None and p.epoch < cfg.epochs and not p.stopped_early and on_epoch(p.epoch, val)
    return bool(pruned), s.trackers()


def _train_epoch(s: Session, writer, reporter, stop: threading.Event, steps_per_epoch: int, team: Solo) -> int:
    """One epoch from `progress.batch`; metrics are summed on the device and read every log_every steps.
    Returns the images this process trained on."""
    cfg, p, model = s.cfg, s.progress, s.step_model
    model.train()
    sums = torch.zeros(2, device=s.device)  # loss*n and correct since the last record, kept on the device
    images_seen = logged_from = 0
    next_checkpoint = time.monotonic() + cfg.checkpoint_every
    started = time.monotonic()
    first_look_at = steps_per_epoch // 2 if p.epoch == 0 and team.is_writer and len(s.val_set) else None
    for x, y in s.loader.epoch(p.epoch, start_batch=p.batch):
        if team.should_stop(stop):  # every rank stops at the same step
            if team.is_writer:
                _save_mid_epoch(s, sums)
            raise _Stopped
        # a kill loses at most this much (the writer saves alone: every rank holds the same weights)
        if team.is_writer and cfg.checkpoint_every and time.monotonic() >= next_checkpoint:
            _save_mid_epoch(s, sums)
            next_checkpoint = time.monotonic() + cfg.checkpoint_every
        lr = lr_at(cfg, p.step, steps_per_epoch, s.plateau.scale)
        for group in s.optimizer.param_groups:
            group["lr"] = _group_rate(group, lr, p.step / steps_per_epoch)
        with autocast(s.device, s.amp):
            logits = model(x)  # (B, C)
            loss = s.criterion(logits.float(), y)
        s.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        s.optimizer.step()
        if s.lookahead is not None:
            s.lookahead.after_step(p.step + 1)
        if s.ema is not None:
            s.ema.update(s.model, p.step)
        with torch.no_grad():
            sums += torch.stack([loss.detach() * len(y), (logits.argmax(1) == y).sum()])
        p.step, p.batch = p.step + 1, p.batch + 1
        images_seen += len(y)
        if p.step % cfg.log_every == 0:
            loss_sum, correct = team.sum(sums).tolist()  # the one host sync of the interval
            if not math.isfinite(loss_sum):
                raise Diverged
            n = (images_seen - logged_from) * team.size
            writer.write([{"kind": "train", "epoch": p.epoch + p.batch / steps_per_epoch, "step": p.step,
                           "loss": loss_sum / n, "acc": correct / n, "lr": lr, "time": time.time()}])
            sums.zero_()
            logged_from = images_seen
        reporter.tick(p.step, p.epoch)
        if p.batch == first_look_at and time.monotonic() - started >= FIRST_LOOK_AFTER_S:
            _first_look(s)
    return images_seen


def _first_look(s: Session) -> None:
    """The validation answers halfway through a slow first epoch, for the live view's first matrix. The weights,
    the schedule and the metrics are untouched (the model is only evaluated); its second counts in the epoch's."""
    result = _evaluate_val(s)
    if math.isfinite(result.mean_loss):  # a diverging run fails at its next logged step instead
        predictions.save_first_look(s.run_dir, result.probs)


def _group_rate(group: dict[str, Any], lr: float, epochs_done: float) -> float:
    """The schedule's rate times the group's lr_scale; 0 once the group's train_epochs are done.

    Worked out from the step every step, so a resumed run holds a finished group still as well."""
    if epochs_done >= group.get("train_epochs", math.inf):
        return 0.0
    return lr * group.get("lr_scale", 1.0)


def _save_mid_epoch(s: Session, sums: torch.Tensor) -> None:
    """A resumable checkpoint inside an epoch, unless the weights have already gone NaN (then the run fails)."""
    if not math.isfinite(sums[0].item()):  # a host sync, but only once a checkpoint interval
        raise Diverged
    checkpoints.save_checkpoint(s.run_dir, "last", s.checkpoint({}))


def _evaluate_val(s: Session) -> Evaluation:
    """The model as it is now on the validation split (an epoch's end, the first look)."""
    return evaluate(s.eval_model, s.val_images, s.val_labels, s.normalize, amp_dtype=s.amp,
                    memory_format=s.memory_format)


def _validate(s: Session) -> tuple[dict[str, Any], bool]:
    """Validation metrics after an epoch and whether they are the best so far; updates plateau and early stopping."""
    p, cfg = s.progress, s.cfg
    if not len(s.val_set):
        return {}, False
    result = _evaluate_val(s)
    if not math.isfinite(result.mean_loss):
        raise Diverged
    predictions.save_val_predictions(s.run_dir, p.epoch, result.probs)
    metrics = {"val_loss": result.mean_loss, "val_acc": result.accuracy}
    improved = p.best_val_acc is None or result.accuracy > p.best_val_acc
    if improved:
        p.best_val_acc = result.accuracy
    if cfg.schedule == "plateau":
        s.plateau.update(result.mean_loss)
    if cfg.early_stopping:
        s.early.update(result.mean_loss)
        p.stopped_early = s.early.bad_epochs >= cfg.early_stopping
    return metrics, improved


def _final_test(s: Session, writer: lifecycle.MetricsWriter) -> float:
    """Evaluate on the untouched test split; after early stopping, with the best weights."""
    model, best = s.eval_model, layout.checkpoint(s.run_dir, "best")
    if s.progress.stopped_early and best.exists():
        model.load_state_dict(checkpoints.load_checkpoint(best)["model_state"])
    images = images_to_tensor(s.test_set.images, s.device)
    labels = torch.from_numpy(s.test_set.labels).to(s.device)
    start = time.perf_counter()
    result = evaluate(model, images, labels, s.normalize, tta=s.cfg.tta, amp_dtype=s.amp,
                      memory_format=s.memory_format)
    seconds = time.perf_counter() - start
    if not math.isfinite(result.mean_loss):
        raise Diverged
    predictions.save_test_predictions(s.run_dir, s.test_set.labels, result.probs, result.loss, s.test_set.index)
    accuracy = class_accuracy(s.test_set.labels, result.probs.argmax(1), len(s.classes))
    per_class = {name: None if math.isnan(a) else float(a) for name, a in zip(s.classes, accuracy)}
    summary = {"accuracy": result.accuracy, "loss": result.mean_loss, "per_class_accuracy": per_class,
               "images": int(len(labels)), "tta": s.cfg.tta, "seconds": seconds,
               "early_stopped": s.progress.stopped_early}
    records.write_json(layout.test_summary(s.run_dir), summary)
    writer.write([{"kind": "test", "epoch": s.progress.epoch, "step": s.progress.step,
                   "test_loss": result.mean_loss, "test_acc": result.accuracy, "time": time.time()}])
    return result.accuracy


def _save_features(s: Session, stop: threading.Event) -> None:
    """The feature map's files (core/training/feature_map.py), after the test. A failure or a stop here costs the run
    only its map, which the dashboard can compute later; the trained model and its test stand."""
    start = time.perf_counter()
    try:
        write_features(s.run_dir, s.eval_model, s.normalize, s.test_set, s.train_set, s.device,
                                amp_dtype=s.amp, memory_format=s.memory_format, stop=stop)
    except FeaturesStopped:
        log.info("run %s stopped before its feature map was saved", s.run_dir.name)
    except Exception:  # noqa: BLE001 (the map is an extra: it never fails the run)
        log.warning("could not save the feature map of %s", s.run_dir.name, exc_info=True)
    else:
        log.info("feature map of %s saved in %.1f s", s.run_dir.name, time.perf_counter() - start)


def start_run(cfg: TrainConfig, runs_dir: str | Path, name: str | None = None, **train_kwargs) -> RunResult:
    """Create a run folder for `cfg` and train it: the one-call form used by the bench and tests.

    A model name no architecture is registered under is refused (ValueError) before the folder is made."""
    check_model_name(cfg.model)
    run_dir = lifecycle.create_run(runs_dir, cfg.to_dict(), name=name, state=RunState.QUEUED)
    return train(cfg, run_dir, **train_kwargs)


def resume_run(runs_dir: str | Path, run_id: str, **train_kwargs) -> RunResult:
    """Continue a stopped, failed or interrupted run from its last checkpoint with its own config."""
    run_dir, cfg = checked_run(runs_dir, run_id, "resume")
    return train(cfg, run_dir, resume=True, **train_kwargs)


def restart_run(runs_dir: str | Path, run_id: str, **train_kwargs) -> RunResult:
    """Train a run that ended before its first checkpoint again from the start, in its own folder."""
    run_dir, cfg = checked_run(runs_dir, run_id, "restart")
    lifecycle.reset_for_restart(run_dir)
    return train(cfg, run_dir, **train_kwargs)


def train_queued(runs_dir: str | Path, run_id: str, **train_kwargs) -> RunResult:
    """Train a run the dashboard queued (new, or handed back to resume): from its last checkpoint if it has one."""
    run_dir, cfg = checked_run(runs_dir, run_id, "queued")
    return train(cfg, run_dir, resume=catalog.has_checkpoint(run_dir), **train_kwargs)


_REFUSALS = {"resume": lifecycle.resume_refusal, "restart": lifecycle.restart_refusal,
             "queued": lifecycle.queued_refusal}


def checked_run(runs_dir: str | Path, run_id: str, how: str) -> tuple[Path, TrainConfig]:
    """The run's folder and config when it may train again `how` (resume, restart, queued), or RunError with
    the one sentence saying why not (ValueError when its model is not one this version has). Reads only: a
    torchrun team checks on every rank before any rank writes."""
    run_dir = catalog.run_path(runs_dir, run_id)
    summary = catalog.summarize_run(run_dir)
    refusal = _REFUSALS[how](summary)
    if refusal:
        raise catalog.RunError(refusal)
    cfg = TrainConfig.from_dict(summary.config)
    check_model_name(cfg.model)
    return run_dir, cfg
