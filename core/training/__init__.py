"""Training: from a TrainConfig to a trained run folder.

- models/      the model registry (registry.py) and the architectures that register in it
- recipes      named presets of settings
- schedules    the learning-rate schedules and the plateau tracker
- ema          the weight average and lookahead
- session      what one run holds while it trains (data on the device, model, optimiser, trackers)
- engine       `train`: the loop, checkpoints, validation, the final test; start_run, resume_run and the like
- reporting    status.json while a run trains
- feature_map  the feature map's files, written at the end of a run or later as a job
- inference    the one inference path (`infer`, `evaluate`, `Predictor`), shared with the analysis wing
- distributed  a run trained by a torchrun team
- device       which device, and what it can do

Imports the run folder (core.rundir) and the pictures (core.data); never the analysis wing or a conductor
(tests/core/test_wings.py checks).
"""
