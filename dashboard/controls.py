"""The words for every training setting: a label, a help text and plain names for its choices.

One table a TrainConfig field, written for people who do not train networks. The Train page draws a
control from each; the Sweeps page names the settings a sweep varies with the same words.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

from core.rundir.config import TrainConfig

ALL_GPUS = "all-gpus"  # a device choice, not a config value: the run's device is cuda, trained by one rank a GPU

@dataclass(frozen=True)
class Control:
    field: str
    label: str
    help: str
    choices: dict | None = None  # value -> plain words (the values offered are core's, for a field with choices)
    step: float | None = None  # number box step (floats)


MODEL = Control("model", "Model", "The network architecture. Bigger models can learn more but train more slowly.")

MAIN = [
    Control("epochs", "Epochs", "How many times the model looks at every training picture. More epochs take "
            "longer and usually help, up to a point."),
    Control("batch_size", "Batch size", "How many pictures the model looks at before each small correction. "
            "Bigger is faster on a GPU but needs more memory; if training runs out of memory, lower it."),
    Control("lr", "Learning rate", "How big each correction is. Too big and training goes haywire, too small "
            "and it crawls; the recipes' values are good starting points.", step=0.01),
    Control("optimizer", "Optimiser", "The method that turns mistakes into corrections.",
            {"sgd": "SGD with momentum (classic)", "adam": "Adam (forgiving)",
             "adamw": "AdamW (Adam, cleaner weight decay)"}),
    Control("schedule", "Learning-rate plan", "How the learning rate changes during training. Starting high and "
            "ending low usually gives the best results.",
            {"constant": "Constant", "step": "Drop in steps", "cosine": "Smooth decrease (cosine)",
             "onecycle": "Warm up, then decrease (one-cycle)", "linear": "Warm up, then straight down",
             "plateau": "Lower when progress stalls"}),
]

MORE = [
    Control("val_fraction", "Share kept for validation", "Part of the training pictures held back to check "
            "progress after each epoch (0.1 = 10%). 0 turns the check off.", step=0.05),
    Control("momentum", "Momentum", "How much each correction keeps going in the direction of the previous "
            "ones (0 to below 1).", step=0.05),
    Control("nesterov", "Look-ahead momentum (Nesterov)", "A slightly smarter momentum for SGD."),
    Control("weight_decay", "Weight decay", "A gentle pull keeping the model simple, which helps it do well on "
            "new pictures. Typical values are tiny, like 0.0005.", step=0.0001),
    Control("warmup_epochs", "Warm-up epochs", "Epochs at the start during which the learning rate grows "
            "gradually (one-cycle and straight-down plans).", step=0.5),
    Control("lr_start_fraction", "Warm-up starts at (share of peak)", "Where the warm-up begins, as a share of the "
            "learning rate: 0.1 starts at a tenth of it (one-cycle and straight-down plans).", step=0.05),
    Control("lr_end_fraction", "Ends at (share of peak)", "Where the learning rate ends, as a share of its peak: 0 "
            "brings it down to nothing (one-cycle and straight-down plans).", step=0.01),
    Control("label_smoothing", "Label smoothing", "Teaches the model not to be over-confident (0 = off, "
            "0.1-0.2 is common).", step=0.05),
    Control("crop_padding", "Random shifts (pixels)", "Moves each training picture a few pixels at random so the "
            "model learns that position does not matter. 0 = off."),
    Control("flip", "Mirror pictures", "Shows pictures mirrored left-right at random, since a mirrored cat is "
            "still a cat.", {"none": "Never", "random": "At random", "alternating": "Every other epoch"}),
    Control("cutout", "Blank squares (pixels)", "Hides a random square of this size in each training picture, so "
            "the model cannot rely on a single spot. 0 = off."),
    Control("tta", "Test-time augmentation", "At the end, also judges mirrored and shifted copies of each test "
            "picture and combines the answers, the unshifted ones counting most: a little more accurate, a little slower."),
    Control("feature_map", "Map of the test set", "At the end, also saves what the model 'sees' in each picture and "
            "lays the test pictures out on a map (the Map page), with similar ones close together. Costs about a "
            "minute on a processor; it can also be made later from the Map page."),
    Control("ema", "Weight averaging", "Evaluates a running average of the model instead of its latest state "
            "(e.g. 0.99); 0 = off.", step=0.01),
    Control("norm_bias_lr_scale", "Normalisation shift speed-up", "fastnet models: how many times faster than the "
            "rest the shifts of the normalisation layers learn (1 = same speed; the best recipe uses 64). Their weight "
            "decay is lowered to match, so only the learning speeds up.", step=1.0),
    Control("whiten_bias_epochs", "Stop the first layer's offset after (epochs)", "fastnet models: the very first "
            "layer's offsets stop learning after this many epochs, which steadies the rest of training. 0 = they "
            "learn to the end.", step=0.5),
    Control("lookahead_every", "Steady the weights every (steps)", "Every this many steps, pulls the model back "
            "towards a slow-moving average of its recent states, and ends on that average: smoother, often a little "
            "more accurate. The best recipe uses 5; 0 = off."),
    Control("early_stopping", "Stop early after", "Stop when the validation loss has not improved for this many "
            "epochs; 0 = always train all epochs."),
    Control("step_every", "Drop every (epochs)", "'Drop in steps' plan: lower the learning rate every this many "
            "epochs."),
    Control("step_gamma", "Drop factor", "'Drop in steps' plan: multiply the learning rate by this at each drop.",
            step=0.05),
    Control("plateau_patience", "Patience (epochs)", "'Lower when progress stalls' plan: epochs without progress "
            "before lowering the learning rate."),
    Control("plateau_factor", "Lowering factor", "'Lower when progress stalls' plan: multiply the learning rate by "
            "this each time.", step=0.05),
    Control("grayscale", "Black and white", "Train on brightness only, ignoring colour."),
    Control("normalize", "Normalise colours", "Shift and scale the colours so every channel averages zero: "
            "almost always helps."),
    Control("device", "Where to train", "'auto' uses a GPU when there is one, otherwise the processor. On a "
            "machine with several NVIDIA GPUs, 'all GPUs' trains this one run on every one of them at once, each "
            "taking an equal share of every batch.",
            {"auto": "auto", "cpu": "Processor (CPU)", "cuda": "NVIDIA GPU (cuda)", "mps": "Apple GPU (mps)",
             ALL_GPUS: "All GPUs of this machine (one run)"}),
    Control("precision", "Number precision", "'auto' uses faster half-size numbers where the hardware supports "
            "them; fp32 is the safe full size; bf16 forces half size."),
    Control("seed", "Random seed", "Fixes the random choices, so the same settings give the same run on the "
            "processor."),
    Control("split_seed", "Validation split seed", "Which pictures are held back for validation."),
    Control("folds", "Folds (K-fold)", "Splits the training pictures into this many parts and holds one out "
            "instead of the validation share, so the model's answers on it are out-of-sample. Usually set by the "
            "Possibly mislabelled page; 0 = off."),
    Control("fold", "Held-out fold", "With folds: which part (0 to folds - 1) is held out."),
    Control("log_every", "Record every (steps)", "How often the training curve gets a new point."),
    Control("checkpoint_every", "Save progress every (seconds)", "How often training saves what it has learned "
            "so far, so that a crash or a closed laptop loses at most this much. 0 = only at the end of each "
            "epoch.", step=30.0),
    Control("compile", "Compile the model", "Spends a minute or so preparing the model at the start so that later "
            "epochs run faster; worth it for long runs on an NVIDIA GPU."),
    Control("data_dir", "Data folder", "Where CIFAR-10 is downloaded and decoded pictures are kept; empty = the "
            "project's data/ folder."),
]
FIELD_TYPES = {f.name: f.type for f in fields(TrainConfig)}
FIELD_CHOICES = {f.name: list(f.metadata["choices"]) for f in fields(TrainConfig) if "choices" in f.metadata}

BY_FIELD = {c.field: c for c in [MODEL, *MAIN, *MORE]}


def label(field: str) -> str:
    """The setting's name in plain words ("Learning rate" for lr); the field's own name where there is none."""
    control = BY_FIELD.get(field)
    return control.label if control else field


def choice_words(field: str, value: object, short: bool = False) -> str:
    """A value of a setting in plain words: "Adam (forgiving)" for optimizer adam ("Adam" when `short`), "On"
    for True; the value itself where there are no words for it."""
    if isinstance(value, bool):
        return "On" if value else "Off"
    control = BY_FIELD.get(field)
    words = ((control.choices if control else None) or {}).get(value, str(value))
    return words.split(" (")[0] if short else words
