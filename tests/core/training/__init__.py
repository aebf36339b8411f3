"""Tests of core/training/: models, augmentations, schedules, the engine, devices, several processes."""
