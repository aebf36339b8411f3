"""Learning dynamics: how each validation picture fared over the epochs, from the saved per-epoch predictions.

The engine saves the validation probabilities after every epoch (predictions/val_epoch_NNNN.npz, read
here only through core.rundir.predictions). Stacked, they are an (E epochs, N pictures, C classes) array, and
from it come, per picture:

- the first epoch it was right, and the epoch from which it stays right ("learned for good");
- its forgetting events: right after one epoch, wrong after the next (Toneva et al. 2019, "An Empirical
  Study of Example Forgetting during Deep Neural Network Learning");
- the mean and the spread (standard deviation) over the epochs of the probability given to its true
  class, and from them a region of the "data map" (Swayamdipta et al. 2020, "Dataset Cartography").

Epochs whose file is damaged, or gone between listing and reading, are skipped with a sentence saying
why; "consecutive epochs" then means consecutive among those read. A run still training simply has
more epochs the next time it is read. Pure numpy; the dashboard caches the reads (dashboard/loaders.py).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.rundir import layout
from core.rundir.predictions import Predictions, PredictionsError, load_predictions, val_epochs

MIN_EPOCHS = 2  # forgetting and spread need at least two epochs to compare
NEVER = -1  # first_correct / learned_for_good of a picture that was never (or is not now) right

# Data-map regions (dataset cartography). A picture's region comes from its true-class probability over
# the epochs read: its spread (standard deviation, 0 to 0.5) first, then its mean (0 to 1).
AMBIGUOUS_SPREAD = 0.2  # spread >= 0.2: the model kept changing its mind -> "ambiguous"
EASY_CONFIDENCE = 0.5  # otherwise mean >= 0.5: steadily right -> "easy-to-learn", below -> "hard-to-learn"
REGIONS = ("easy-to-learn", "ambiguous", "hard-to-learn")  # region numbers 0, 1, 2
EASY, AMBIGUOUS, HARD = range(len(REGIONS))


# ---------------------------------------------------------------------------------------------
# The stack of epochs
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Skipped:
    """An epoch left out of the stack and why, in one sentence."""
    epoch: int
    reason: str


@dataclass(frozen=True)
class EpochStack:
    """The validation predictions of every readable epoch, oldest first."""
    epochs: np.ndarray  # (E,) int64 epoch numbers, ascending
    probs: np.ndarray  # (E, N, C) float16 class probabilities, as saved
    labels: np.ndarray  # (N,) true class
    index: np.ndarray  # (N,) position of each picture in the train split
    skipped: tuple[Skipped, ...] = ()

    @property
    def pred(self) -> np.ndarray:
        """(E, N) predicted class after each epoch."""
        return self.probs.argmax(axis=2)

    def predictions(self, i: int = -1) -> Predictions:
        """The i-th epoch read (default the newest) as Predictions, for the picture tiles."""
        probs = self.probs[i].astype(np.float32)  # (N, C)
        return Predictions(self.labels, probs.argmax(1), probs, self.index, "val")


def read_epoch(run_dir: Path, epoch: int) -> tuple[Predictions | None, str | None]:
    """One epoch's predictions, or None with the sentence saying why they cannot be used."""
    try:
        preds = load_predictions(run_dir, "val", epoch)
    except PredictionsError as exc:
        return None, str(exc)
    if preds is None:  # listed, then gone (a restarted run clears predictions/)
        return None, f"{layout.in_predictions(layout.val_epoch(run_dir, epoch).name)} went away while it was being read."
    return preds, None


def build_stack(readings: Iterable[tuple[int, Predictions | None, str | None]]) -> EpochStack:
    """Stack (epoch, predictions or None, reason) readings; unusable ones become `skipped` with their reason.

    The first usable epoch sets the pictures and classes; a later one that does not match them is skipped.
    """
    epochs, probs, skipped = [], [], []
    first: Predictions | None = None
    for epoch, preds, reason in sorted(readings, key=lambda r: r[0]):
        if preds is None:
            skipped.append(Skipped(epoch, reason or f"The validation results of epoch {epoch} are missing."))
            continue
        if first is None:
            first = preds
        elif preds.probs.shape != first.probs.shape or not np.array_equal(preds.labels, first.labels):
            skipped.append(Skipped(epoch, f"The validation results of epoch {epoch} do not match those of epoch "
                                          f"{epochs[0]} (other pictures or classes), so they are left out."))
            continue
        epochs.append(epoch)
        probs.append(preds.probs.astype(np.float16))
    if first is None:
        empty = np.zeros(0, dtype=np.int64)
        return EpochStack(empty, np.zeros((0, 0, 0), np.float16), empty, empty, tuple(skipped))
    return EpochStack(np.asarray(epochs, dtype=np.int64), np.stack(probs), first.labels, first.index, tuple(skipped))


def load_stack(run_dir: Path) -> EpochStack:
    """Every saved validation epoch of a run, read through core.rundir.predictions (damaged ones skipped)."""
    return build_stack((epoch, *read_epoch(run_dir, epoch)) for epoch in val_epochs(run_dir))


def pair_counts(source: EpochStack | Sequence[Predictions], true_class: int, pred_class: int) -> np.ndarray:
    """(E,) how many pictures of `true_class` were predicted `pred_class` after each epoch.

    `source` is a stack or a list of per-epoch Predictions; each count equals that epoch's confusion-matrix
    square (true_class, pred_class).
    """
    if isinstance(source, EpochStack):
        labels, pred = source.labels[None, :], source.pred  # (1, N), (E, N)
    else:
        if not source:
            return np.zeros(0, dtype=np.int64)
        labels, pred = np.stack([p.labels for p in source]), np.stack([p.pred for p in source])  # (E, N) each
    return ((labels == true_class) & (pred == pred_class)).sum(axis=1).astype(np.int64)


# ---------------------------------------------------------------------------------------------
# Per picture
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Dynamics:
    """What happened to each validation picture over the epochs read; arrays are (N,) unless noted."""
    epochs: np.ndarray  # (E,) epoch numbers read
    labels: np.ndarray  # true class
    correct: np.ndarray  # (E, N) bool: right after each epoch
    first_correct: np.ndarray  # epoch number of the first right answer, NEVER if never right
    learned_for_good: np.ndarray  # epoch from which it is right in every later epoch read, NEVER if wrong now
    forgetting: np.ndarray  # forgetting events: right after an epoch, wrong after the next one read
    confidence: np.ndarray  # mean probability of the true class over the epochs
    spread: np.ndarray  # its standard deviation over the epochs ("variability"), 0 to 0.5
    region: np.ndarray  # EASY, AMBIGUOUS or HARD (index into REGIONS)


def too_few_epochs(n: int) -> str | None:
    """The sentence a run with fewer than MIN_EPOCHS readable epochs gets, or None when it has enough."""
    if n >= MIN_EPOCHS:
        return None
    have = "none that can be read" if n == 0 else "only 1 so far"  # no epoch at all has its own sentence
    return (f"Learning dynamics need the validation results of at least {MIN_EPOCHS} epochs, to compare one "
            f"epoch with the next; this run has {have}.")


def learning_dynamics(stack: EpochStack) -> Dynamics:
    """Per-picture dynamics of a stack; ValueError (one sentence) with fewer than MIN_EPOCHS epochs."""
    problem = too_few_epochs(len(stack.epochs))
    if problem:
        raise ValueError(problem)
    n = len(stack.labels)
    correct = stack.pred == stack.labels[None, :]  # (E, N)
    true_prob = stack.probs[:, np.arange(n), stack.labels].astype(np.float64)  # (E, N)
    confidence, spread = true_prob.mean(axis=0), true_prob.std(axis=0)  # population std, as the paper
    return Dynamics(stack.epochs, stack.labels, correct, _first_correct(correct, stack.epochs),
                    _learned_for_good(correct, stack.epochs), _forgetting_events(correct),
                    confidence, spread, regions(confidence, spread))


def _first_correct(correct: np.ndarray, epochs: np.ndarray) -> np.ndarray:
    ever = correct.any(axis=0)  # (N,)
    return np.where(ever, epochs[correct.argmax(axis=0)], NEVER)


def _learned_for_good(correct: np.ndarray, epochs: np.ndarray) -> np.ndarray:
    # stays[e] is True when the picture is right at epoch e and every epoch after it: False...False True...True.
    stays = np.logical_and.accumulate(correct[::-1], axis=0)[::-1]  # (E, N)
    held = stays.sum(axis=0)  # (N,) epochs at the end during which it stayed right
    return np.where(held > 0, epochs[len(epochs) - np.maximum(held, 1)], NEVER)


def _forgetting_events(correct: np.ndarray) -> np.ndarray:
    return (correct[:-1] & ~correct[1:]).sum(axis=0).astype(np.int64)  # right at e, wrong at e + 1


def regions(confidence: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """(N,) region numbers: AMBIGUOUS when spread >= AMBIGUOUS_SPREAD, else EASY (mean >= EASY_CONFIDENCE) or HARD."""
    steady = np.where(confidence >= EASY_CONFIDENCE, EASY, HARD)
    return np.where(spread >= AMBIGUOUS_SPREAD, AMBIGUOUS, steady).astype(np.int64)


# ---------------------------------------------------------------------------------------------
# Lists of pictures, as positions into the validation arrays
# ---------------------------------------------------------------------------------------------

def _least_confident_first(d: Dynamics, positions: np.ndarray) -> np.ndarray:
    return positions[np.argsort(d.confidence[positions], kind="stable")]


def region_positions(d: Dynamics, region: int) -> np.ndarray:
    """The pictures of one region (EASY, AMBIGUOUS, HARD), the least confident first."""
    if region not in range(len(REGIONS)):
        raise ValueError(f"region must be a number from 0 to {len(REGIONS) - 1} ({', '.join(REGIONS)}), "
                         f"got {region!r}.")
    return _least_confident_first(d, np.flatnonzero(d.region == region))


def box_positions(d: Dynamics, confidence: tuple[float, float], spread: tuple[float, float]) -> np.ndarray:
    """The pictures inside a box of the data map (both ranges inclusive, either order), least confident first."""
    (c_lo, c_hi), (s_lo, s_hi) = sorted(confidence), sorted(spread)
    inside = (d.confidence >= c_lo) & (d.confidence <= c_hi) & (d.spread >= s_lo) & (d.spread <= s_hi)
    return _least_confident_first(d, np.flatnonzero(inside))


def most_forgotten(d: Dynamics) -> np.ndarray:
    """Pictures forgotten at least once, the most forgetting events first (ties: lower confidence first)."""
    positions = np.flatnonzero(d.forgetting > 0)
    return positions[np.lexsort((d.confidence[positions], -d.forgetting[positions]))]


def first_learned_counts(d: Dynamics) -> tuple[np.ndarray, np.ndarray]:
    """(E,) pictures first right after each epoch, and (E,) pictures right for good from each epoch."""
    first = (d.first_correct[None, :] == d.epochs[:, None]).sum(axis=1)
    for_good = (d.learned_for_good[None, :] == d.epochs[:, None]).sum(axis=1)
    return first.astype(np.int64), for_good.astype(np.int64)
