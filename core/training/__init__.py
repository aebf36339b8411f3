"""Training: from a TrainConfig to a trained run folder.

Imports the run folder (core.rundir) and the pictures (core.data); never the analysis wing.
"""
