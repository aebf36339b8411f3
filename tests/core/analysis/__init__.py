"""Tests of core/analysis/: mistakes, calibration, compare, dynamics, features, K-fold, label issues, saliency."""
