"""Calibration: does the model's confidence match how often it is right?

Every picture gets a *top-label confidence* (the probability of the class the model picked) and a
*correctness* (1 if that class is the true one). Pictures are put into equal-width confidence bins
(0-10 %, 10-20 %, ... with scikit-learn's `calibration_curve`, strategy "uniform"); a well calibrated
model is right in each bin about as often as its mean confidence there says.

Expected calibration error (ECE), the standard definition (Guo et al. 2017, "On Calibration of Modern
Neural Networks"):

    ECE = sum over bins b of  (n_b / N) * | accuracy_b - confidence_b |

the gap between how right and how sure, averaged over the bins weighted by their pictures; 0 is
perfect, and an ECE of 0.05 means "5 percentage points off" on an average picture's bin.

Per class, pictures are grouped by the class the model *predicted* (not their true class): "when it
says cat, how sure is it and how often is it a cat?", which is the question a user of the model's
answer can act on. That class's accuracy is then its precision.

    top_label(probs, labels) -> (confidence, correct)
    reliability(confidence, correct) -> Reliability      bins: counts, mean confidence, accuracy, ECE
    per_class(probs, labels) -> list[ClassCalibration]
    plain_sentence(rel, "test") -> str                   one sentence for a non-programmer
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.calibration import calibration_curve

N_BINS = 10  # 10 %-wide bins: enough pictures in each on a 10,000-picture test set
HIGH_CONFIDENCE = 0.7  # the plain sentence speaks of the busiest bin from here up ("when it is sure")


@dataclass(frozen=True)
class Reliability:
    """Pictures binned by top-label confidence; a bin without pictures has NaN confidence and accuracy."""
    edges: np.ndarray  # (B + 1,) bin borders from 0 to 1
    count: np.ndarray  # (B,) pictures in each bin
    confidence: np.ndarray  # (B,) mean top-label confidence in each bin
    accuracy: np.ndarray  # (B,) share right in each bin
    ece: float  # expected calibration error, 0..1 (see the module docstring)

    @property
    def total(self) -> int:
        return int(self.count.sum())

    @property
    def mean_confidence(self) -> float:
        return float(np.nansum(self.confidence * self.count) / self.total)

    @property
    def overall_accuracy(self) -> float:
        return float(np.nansum(self.accuracy * self.count) / self.total)


@dataclass(frozen=True)
class ClassCalibration:
    """The pictures the model predicted as one class; NaN numbers when it never predicted that class."""
    predicted: int  # pictures predicted as this class
    mean_confidence: float
    accuracy: float  # share of them that really are this class (the class's precision)
    ece: float


def top_label(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N,) confidence in the picked class and (N,) 1/0 whether it was the true class."""
    pred = probs.argmax(1)  # (N,)
    confidence = np.clip(probs[np.arange(len(pred)), pred], 0.0, 1.0)  # float16 files can hold 1.0005
    return confidence.astype(np.float64), (pred == labels).astype(np.int64)


def bin_ids(confidence: np.ndarray, n_bins: int = N_BINS) -> np.ndarray:
    """Each picture's bin, as calibration_curve bins them: right-closed, (0.1, 0.2], with 0 in the first."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return np.searchsorted(edges[1:-1], confidence)


def reliability(confidence: np.ndarray, correct: np.ndarray, n_bins: int = N_BINS) -> Reliability:
    """Bin the pictures by confidence (scikit-learn's calibration_curve) and compute the ECE.

    Needs at least one picture; ValueError otherwise.
    """
    if len(confidence) == 0:
        raise ValueError("Calibration needs at least one picture with a prediction.")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    count = np.bincount(bin_ids(confidence, n_bins), minlength=n_bins)  # (B,)
    # calibration_curve returns the non-empty bins only, in order: put them back in their places.
    accuracy_kept, confidence_kept = calibration_curve(correct, confidence, n_bins=n_bins, strategy="uniform",
                                                       pos_label=1)
    accuracy, mean_conf = np.full(n_bins, np.nan), np.full(n_bins, np.nan)
    accuracy[count > 0], mean_conf[count > 0] = accuracy_kept, confidence_kept
    gaps = np.abs(accuracy - mean_conf)
    ece = float(np.nansum(gaps * count) / count.sum())
    return Reliability(edges, count, mean_conf, accuracy, ece)


def per_class(probs: np.ndarray, labels: np.ndarray, n_bins: int = N_BINS) -> list[ClassCalibration]:
    """Calibration of the pictures predicted as each class, in class order."""
    confidence, correct = top_label(probs, labels)
    pred = probs.argmax(1)
    result = []
    for k in range(probs.shape[1]):
        mine = pred == k
        if not mine.any():
            result.append(ClassCalibration(0, np.nan, np.nan, np.nan))
            continue
        rel = reliability(confidence[mine], correct[mine], n_bins)
        result.append(ClassCalibration(int(mine.sum()), rel.mean_confidence, rel.overall_accuracy, rel.ece))
    return result


def chosen_bin(rel: Reliability) -> int:
    """The bin the plain sentence speaks of: the busiest from HIGH_CONFIDENCE up, else the busiest of all."""
    high = rel.edges[:-1] >= HIGH_CONFIDENCE - 1e-9
    counts = np.where(high, rel.count, 0)
    return int(counts.argmax()) if counts.max() > 0 else int(rel.count.argmax())


def plain_sentence(rel: Reliability, split: str = "test") -> str:
    """'When the model says it is about 93% sure, it is right 84% of the time: it is over-confident ...'."""
    b = chosen_bin(rel)
    sure, right = rel.confidence[b], rel.accuracy[b]
    pictures = "test pictures" if split == "test" else "validation pictures"
    # Judged on the whole percents the sentence shows, so it never says "over-confident" of 85% and 85%.
    shown_sure, shown_right = round(sure * 100), round(right * 100)
    if shown_right == shown_sure:
        verdict = "its confidence can be taken at its word"
    elif shown_right < shown_sure:
        verdict = "it is over-confident (surer of itself than it should be)"
    else:
        verdict = "it is under-confident (right more often than it claims)"
    return (f"When the model says it is about {shown_sure}% sure (as for {rel.count[b]:,} of the "
            f"{rel.total:,} {pictures}), it is right {shown_right}% of the time: {verdict}.")
