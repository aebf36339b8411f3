"""Tests of core/sweep/: sweeps on Optuna, their files and storages, damaged and fuzzed."""
