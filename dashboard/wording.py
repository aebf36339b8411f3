"""How the pages (and the report) say things: numbers, durations and dates in words, and the sentences about a
run's state, place in the queue, progress and missing test results.

Pure functions of numbers core computes (core.rundir.progress, core.rundir.catalog.RunSummary); no Streamlit,
so the report's command line uses them too and every sentence is unit-tested without a browser.
"""
from __future__ import annotations

import math
from datetime import datetime, timezone

from core.rundir.catalog import RunSummary
from core.rundir.progress import Progress
from core.rundir.state import RunState

MISSING = "–"  # what a number or table cell shows for a value not there (yet), rather than "None" or "nan"


# ---------------------------------------------------------------------------------------------
# Numbers in words
# ---------------------------------------------------------------------------------------------

def ordinal(n: int) -> str:
    """1 -> '1st', 2 -> '2nd', 11 -> '11th', 23 -> '23rd'."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def plural(n: int, word: str) -> str:
    """'1 epoch', '2 epochs', '1,000 points' (English nouns that take an s)."""
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


def change_text(now: int, before: int, epoch_before: int) -> str:
    """How a count moved since an earlier epoch: 'down from 75 after epoch 2', 'the same as after epoch 2'."""
    if now == before:
        return f"the same as after epoch {epoch_before}"
    return f"{'down' if now < before else 'up'} from {before:,} after epoch {epoch_before}"


def format_duration(seconds: float | None) -> str:
    """A short human duration: '45 s', '3 min 05 s', '2 h 07 min'; '' when unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return ""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def format_count(n: int) -> str:
    """Parameter counts in words: '62,006' or '1.2 million'."""
    return f"{n / 1e6:.1f} million" if n >= 1_000_000 else f"{n:,}"


def created_text(created_at: float | None) -> str | None:
    """When a run was created, short: '24 Nov 15:30' (UTC, like the runs table); None when unknown."""
    if created_at is None:
        return None
    when = datetime.fromtimestamp(created_at, tz=timezone.utc)
    return f"{when.day} {when:%b %H:%M}"


def data_label(source: str | None) -> str:
    """How a data source reads on screen."""
    if source == "cifar10":
        return "CIFAR-10"
    if source == "synthetic":
        return "Synthetic shapes"
    return source or ""


# ---------------------------------------------------------------------------------------------
# A run's state in sentences
# ---------------------------------------------------------------------------------------------

def queue_text(position: int | None) -> str:
    """What a queued run says about its place: 'Waiting: 2nd in line'."""
    if position is None:
        return "Waiting to start."
    if position == 0:
        return "Training now."
    return f"Waiting: {ordinal(position)} in line"


def progress_line(progress: Progress) -> str:
    """The progress bar's line: 'Epoch 2 of 4 · step 10 of 40 · about 1 min 30 s left', 'Finished: 4 epochs.'"""
    if progress.state == RunState.COMPLETED:
        return f"Finished: {plural(progress.epochs, 'epoch')}."
    if progress.state == RunState.QUEUED:
        return "Not started yet."
    step = progress.step
    parts = [f"Epoch {progress.epoch} of {progress.epochs}",
             f"step {step} of {progress.total_steps}" if progress.total_steps else f"step {step}"]
    if progress.eta_seconds is not None:
        parts.append(f"about {format_duration(progress.eta_seconds)} left")
    return " · ".join(parts)


NO_TEST_RESULTS = {  # by the run's state: why its final test predictions are not there
    RunState.QUEUED: "This run is waiting to start: its test results are saved when its training finishes.",
    RunState.RUNNING: "This run is still training: its test results are saved when it finishes (the validation "
                      "set shows the mistakes after each epoch meanwhile).",
    RunState.FAILED: "This run failed before its final test, so it has no test results; the Runs page shows what "
                     "went wrong.",
    RunState.STOPPED: "This run was stopped before its final test, so it has no test results; resume it on the "
                      "Train page to finish.",
    RunState.PRUNED: "This sweep trial was pruned (its validation accuracy lagged behind the sweep's other trials), "
                     "so it has no test results; its validation epochs show its mistakes.",
    RunState.INTERRUPTED: "This run ended before its final test, so it has no test results; resume it on the Train "
                          "page to finish.",
}
NO_TEST_RESULTS_OTHERWISE = ("This run has no saved test results (they may have been deleted), so there is nothing "
                             "to show.")


def no_predictions_message(summary: RunSummary, split: str = "test") -> str:
    """One sentence saying why a run has no saved predictions of `split` ("test" or "val") yet."""
    if split == "val":
        if summary.config.get("val_fraction") == 0 and not summary.config.get("folds"):
            return ("This run kept no validation images (its validation share is 0), so only the final test "
                    "set can be shown.")
        return ("This run has no validation results yet: they are saved at the end of every epoch, so check "
                "back after the first one.")
    return NO_TEST_RESULTS.get(summary.state, NO_TEST_RESULTS_OTHERWISE)

