"""A run's saved predictions: what the confusion matrix, the galleries and the live mistakes are drawn from.

The validation labels, the validation probabilities of each epoch (float16) and the final test evaluation,
in the files core.rundir.layout names under predictions/. The engine writes them atomically;
`load_predictions` checks every array once (kind, shape, range, matching lengths, finite probabilities)
and raises PredictionsError with one sentence otherwise.
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.rundir import files, layout
from core.rundir.files import write_atomically
from core.rundir.records import PredictionsError, RunError

# The largest class or picture number a file may hold: anything above does not fit the int64 the pages use.
LARGEST_NUMBER = np.iinfo(np.int64).max


@dataclass(frozen=True)
class Predictions:
    """One evaluated split: what the confusion matrix, the galleries and the lists are drawn from."""
    labels: np.ndarray  # (N,) true class
    pred: np.ndarray  # (N,) predicted class
    probs: np.ndarray  # (N, C) float32 class probabilities
    index: np.ndarray  # (N,) position of each image in its source split (val: the train split)
    split: str  # "val" or "test": what was evaluated
    loss: np.ndarray | None = None  # (N,) per-sample loss, test only


# ---------------------------------------------------------------------------------------------
# Writers (engine side)
# ---------------------------------------------------------------------------------------------

def save_npz(path: Path, **arrays: np.ndarray) -> None:
    """Arrays to one .npz file, written atomically (the feature map and K-fold files use it too)."""
    path.parent.mkdir(exist_ok=True)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:  # a file object: np.savez would add ".npz" to a bare name
            np.savez(fh, **arrays)

    write_atomically(path, write)


def save_val_labels(run_dir: Path, labels: np.ndarray, index: np.ndarray) -> None:
    save_npz(layout.val_labels(run_dir), labels=labels, index=index)


def save_val_predictions(run_dir: Path, epoch: int, probs: np.ndarray) -> None:
    save_npz(layout.val_epoch(run_dir, epoch), probs=probs.astype(np.float16))


def save_first_look(run_dir: Path, probs: np.ndarray) -> None:
    """Validation probabilities halfway through the first epoch (core.training.engine's first look)."""
    save_npz(layout.val_first_look(run_dir), probs=probs.astype(np.float16))


def save_test_predictions(run_dir: Path, labels: np.ndarray, probs: np.ndarray, loss: np.ndarray,
                          index: np.ndarray) -> None:
    save_npz(layout.test_predictions(run_dir), labels=labels, pred=probs.argmax(1), probs=probs,
              loss=loss, index=index)


# ---------------------------------------------------------------------------------------------
# Readers (dashboard side): one sentence for a damaged file, never an exception of numpy's
# ---------------------------------------------------------------------------------------------

def val_epochs(run_dir: Path) -> list[int]:
    """Epochs that have saved validation predictions, in order: every one is a file load_predictions reads."""
    return list(layout.val_epoch_files(run_dir))


def load_predictions(run_dir: Path, split: str = "test", epoch: int | None = None) -> Predictions | None:
    """Saved predictions of `split` ("test", or "val" at `epoch`), or None when there are none yet.

    Every array is checked once, here (kind, shape, range, matching lengths, one class count, finite
    probabilities), so what a page gets can always be drawn. A file that is there but cannot be used
    raises PredictionsError, whose one sentence names the file and what is wrong with it.
    """
    if split == "test":
        return _load_test(layout.test_predictions(run_dir))
    if split == "val":
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise RunError(f"The validation split needs an epoch number of at least 0, got {epoch!r}.")
        return _load_val(run_dir, int(epoch))
    raise RunError(f"split must be 'test' or 'val', got {split!r}.")


def load_first_look(run_dir: Path) -> Predictions | None:
    """The validation predictions halfway through epoch 1, checked like an epoch's; None when the run has none
    (its first half-epoch was quick, or it had no validation split)."""
    return _load_val_file(run_dir, layout.val_first_look(run_dir))


def load_labelled_probs(path: Path, split: str) -> Predictions | None:
    """A file of `labels`, `probs` and `index` for one split (the K-fold runs' out-of-fold answers), checked
    like the others; None when it does not exist, PredictionsError (one sentence) when it is damaged."""
    arrays = read_npz(path, ("labels", "probs", "index"))
    if arrays is None:
        return None
    probs = checked_probs(path.name, arrays["probs"])
    labels, index = (checked_ints(path.name, key, arrays[key], len(probs)) for key in ("labels", "index"))
    _check_classes(path.name, "labels", labels, probs.shape[1])
    return Predictions(labels, probs.argmax(1), probs, index, split)


def _load_test(path: Path) -> Predictions | None:
    arrays = read_npz(path, ("labels", "pred", "probs", "index"), optional=("loss",))
    if arrays is None:
        return None
    probs = checked_probs(path.name, arrays["probs"])
    n, num_classes = probs.shape
    labels, pred, index = (checked_ints(path.name, key, arrays[key], n) for key in ("labels", "pred", "index"))
    _check_classes(path.name, "labels", labels, num_classes)
    _check_classes(path.name, "pred", pred, num_classes)
    loss = arrays.get("loss")
    if loss is not None and (not np.issubdtype(loss.dtype, np.floating) or loss.shape != (n,)):
        raise PredictionsError(f"{layout.in_predictions(path.name)} is damaged: its 'loss' should be {n} numbers, "
                               f"one a picture, but they are {dtype_words(loss.dtype)} of shape {loss.shape}.")
    return Predictions(labels, pred, probs, index, "test", loss)


def _load_val(run_dir: Path, epoch: int) -> Predictions | None:
    return _load_val_file(run_dir, layout.val_epoch(run_dir, epoch))


def _load_val_file(run_dir: Path, probs_path: Path) -> Predictions | None:
    labels_path = layout.val_labels(run_dir)
    probs_file = read_npz(probs_path, ("probs",))
    if probs_file is None:
        return None
    probs_words, labels_words = layout.in_predictions(probs_path.name), layout.in_predictions(labels_path.name)
    label_file = read_npz(labels_path, ("labels", "index"))
    if label_file is None:
        raise PredictionsError(f"{labels_words} is missing, so the validation results in {probs_words} cannot be "
                               "matched to their pictures.")
    probs = checked_probs(probs_path.name, probs_file["probs"])
    n, num_classes = probs.shape
    labels, index = (checked_ints(labels_path.name, key, label_file[key]) for key in ("labels", "index"))
    if len(labels) != n or len(index) != n:
        raise PredictionsError(f"{probs_words} does not fit {labels_words}: it has {n} rows of probabilities for "
                               f"{len(labels)} labels and {len(index)} picture numbers.")
    if labels.max() >= num_classes:
        raise PredictionsError(f"{probs_words} does not fit {labels_words}: its probabilities cover {num_classes} "
                               f"classes, but the labels go up to class {labels.max()}.")
    return Predictions(labels, probs.argmax(1), probs, index, "val")


def read_npz(path: Path, required: tuple[str, ...], optional: tuple[str, ...] = (),
             what: str = "saved predictions") -> dict[str, np.ndarray] | None:
    """The named arrays of an .npz file, or None when the file does not exist (not written yet); `what` the
    file is, in words, for the sentence about a file that cannot be read at all."""
    where = layout.in_predictions(path.name)
    try:
        files.check_regular(path)  # a FIFO or device under the name would block np.load forever
        archive = np.load(path, allow_pickle=False)  # no pickles: reading predictions never runs code
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise PredictionsError(f"{where} is damaged: it holds a single array, not the archive of arrays "
                                   "the trainer writes.")
        with archive:
            missing = [key for key in required if key not in archive.files]
            if missing:
                names = ", ".join(repr(k) for k in missing)
                raise PredictionsError(f"{where} is damaged: it lacks the array{'s' if len(missing) > 1 else ''} "
                                       f"{names}.")
            return {key: archive[key] for key in (*required, *optional) if key in archive.files}
    except FileNotFoundError:
        return None
    except files.NotARegularFile as exc:
        raise PredictionsError(f"{where} is damaged: {exc.strerror}; only a regular file is read.") from None
    except PredictionsError:
        raise
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as exc:  # torn, empty, foreign
        raise PredictionsError(f"{where} is damaged: it cannot be read as {what} "
                               f"({type(exc).__name__}).") from None


def dtype_words(dtype: np.dtype) -> str:
    """A dtype in words, for the sentences below."""
    if dtype.kind in "US":
        return "text"
    if dtype.kind == "b":
        return "true/false values"
    if dtype.kind == "f":
        return "decimal numbers"
    return f"{dtype} values"


def checked_probs(name: str, probs: np.ndarray) -> np.ndarray:
    """(N, C) float32 class probabilities: at least one picture and two classes, every value from 0 to 1."""
    where = layout.in_predictions(name)
    if not np.issubdtype(probs.dtype, np.floating):
        raise PredictionsError(f"{where} is damaged: its probabilities are {dtype_words(probs.dtype)}, not decimal "
                               "numbers.")
    if probs.ndim != 2 or probs.shape[1] < 2:
        raise PredictionsError(f"{where} is damaged: its probabilities should be a table with a row a picture "
                               f"and a column a class (at least 2), but their shape is {probs.shape}.")
    if probs.shape[0] == 0:
        raise PredictionsError(f"{where} holds no pictures, so there is nothing to show.")
    if not np.isfinite(probs).all():
        raise PredictionsError(f"{where} holds probabilities that are not numbers (NaN or infinite), as a "
                               "training run that diverged writes, so its results cannot be shown.")
    # float16 rounding can put a softmax output a hair above 1; anything further is not a probability.
    if probs.min() < 0 or probs.max() > 1.001:
        raise PredictionsError(f"{where} is damaged: its probabilities run from {probs.min():.3g} to "
                               f"{probs.max():.3g} instead of staying between 0 and 1.")
    return probs.astype(np.float32)


def checked_ints(name: str, key: str, values: np.ndarray, n: int | None = None) -> np.ndarray:
    """A (N,) int64 array of whole numbers from 0: class numbers or positions in a split."""
    where = layout.in_predictions(name)
    if not np.issubdtype(values.dtype, np.integer):
        raise PredictionsError(f"{where} is damaged: its {key!r} are {dtype_words(values.dtype)}, not whole numbers.")
    if values.ndim != 1 or (n is not None and len(values) != n):
        expected = f"{n} numbers, one a picture" if n is not None else "a list of numbers, one a picture"
        raise PredictionsError(f"{where} is damaged: its {key!r} should be {expected}, but their shape is "
                               f"{values.shape}.")
    # Range-checked in the file's own dtype: cast first, and uint64's 2**64-1 would wrap to -1 unseen.
    if len(values) and values.min() < 0:
        raise PredictionsError(f"{where} is damaged: its {key!r} include the negative number {values.min()}.")
    if len(values) and values.max() > LARGEST_NUMBER:
        raise PredictionsError(f"{where} is damaged: its {key!r} include the number {values.max()}, far beyond any "
                               "class or picture number.")
    return values.astype(np.int64)


def _check_classes(name: str, key: str, values: np.ndarray, num_classes: int) -> None:
    """Class numbers must stay below the class count of the probabilities in the same file."""
    if values.max() >= num_classes:
        raise PredictionsError(f"{layout.in_predictions(name)} is damaged: its {key!r} go up to class "
                               f"{values.max()}, but its probabilities cover only {num_classes} classes "
                               f"(0 to {num_classes - 1}).")
