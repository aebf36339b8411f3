"""Analysis: what a run's saved predictions, checkpoints and features say about its mistakes.

Reads runs through core.rundir; may use the model registry and inference of core.training; never
trains (core.jobs trains the K-fold runs that kfold plans).
"""
