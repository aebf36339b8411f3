"""Tests of core/: one folder per wing, the conductors (jobs, train, bench, present, faults) at the top."""
