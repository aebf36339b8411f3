"""Tests of core/rundir/: the run folder (catalog, config, checkpoints, records, files)."""
