"""A run's pictures and class names, from the data source it was trained on, checked against its saved
predictions before use.

Shared by the dashboard (dashboard/loaders.py, which adds Streamlit's caches) and the one-file report
(dashboard/report/, which also runs from the command line), so both show the same pictures, refuse
the same foreign data with the same sentence, and name the classes the same way.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np

from core.data import Dataset, ImageSet, load_dataset
from core.rundir import catalog, records
from core.rundir.predictions import Predictions
from core.rundir.records import is_unicode

# (source, data_dir) -> the loaded source, or None and why it cannot be loaded
DatasetLoader = Callable[[str, str], tuple[Dataset | None, str | None]]


def dataset_or_reason(source: str, data_dir: str = "") -> tuple[Dataset | None, str | None]:
    """The decoded images of a data source, or None with core.data's sentence saying why not."""
    try:
        return load_dataset(source, data_dir or None), None
    except (ValueError, OSError) as exc:
        return None, str(exc)


def run_dataset(config: dict, load: DatasetLoader = dataset_or_reason) -> tuple[Dataset | None, str | None]:
    """The dataset a run was trained on, or why it cannot be loaded here (`load`: e.g. a cached loader)."""
    source = config.get("data")
    if not isinstance(source, str) or not source:
        return None, "The run's settings do not say which data it was trained on."
    data, reason = load(source, str(config.get("data_dir") or ""))
    if data is None:
        return None, f"The images of '{source}' cannot be loaded on this machine: {reason}"
    return data, None


def evaluated_split(data: Dataset, preds: Predictions) -> tuple[ImageSet | None, str | None]:
    """The split `preds` index into, or why its pictures are not the ones the run was evaluated on."""
    split = data.test if preds.split == "test" else data.train  # validation pictures are held out of train
    index_ok = len(preds.index) == 0 or (preds.index.min() >= 0 and preds.index.max() < len(split))
    if not index_ok or not np.array_equal(split.labels[preds.index], preds.labels):
        return None, (f"The images of '{data.source}' on this machine are not the ones this run was evaluated "
                      "on (the data changed since), so they are not shown.")
    return split, None


# ---------------------------------------------------------------------------------------------
# Class names
# ---------------------------------------------------------------------------------------------

def _usable_names(candidate: object, num_classes: int) -> list[str] | None:
    """`candidate` as class names when it is `num_classes` different texts, else None."""
    if not isinstance(candidate, (list, tuple)):
        return None
    names = list(candidate)
    if len(names) != num_classes or not all(isinstance(n, str) for n in names) or len(set(names)) != num_classes:
        return None  # the matrix and the filters look classes up by name: names must tell them apart
    if not all(is_unicode(n) for n in names):
        return None  # a lone surrogate ("\ud800" in JSON, a folder name not in UTF-8) cannot be shown or sent
    return names


def _name_sources(summary: catalog.RunSummary,
                  data_classes: Callable[[], Sequence[str] | None]) -> Iterator[object]:
    """Where a run's class names may come from, best first; its data is loaded only when reached."""
    yield summary.classes
    per_class = (records.read_test_summary(summary.path) or {}).get("per_class_accuracy")
    yield list(per_class) if isinstance(per_class, dict) else None  # runs from before meta.json kept classes
    yield data_classes()


def class_names(summary: catalog.RunSummary, num_classes: int,
                data_classes: Callable[[], Sequence[str] | None]) -> list[str]:
    """Class names of a run: from its meta.json, its test summary, its data, or numbered as a last resort.

    Any of these may be damaged or foreign (per_class_accuracy: 5, a list, names that are numbers): a
    source that does not give `num_classes` different names is skipped. `data_classes` is called only
    when the run's own files name no classes. Weights are never opened for names.
    """
    for candidate in _name_sources(summary, data_classes):
        names = _usable_names(candidate, num_classes)
        if names:
            return names
    return [f"class {k}" for k in range(num_classes)]
