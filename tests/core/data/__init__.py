"""Tests of core/data/: sources, cache, split and loader, uploads."""
