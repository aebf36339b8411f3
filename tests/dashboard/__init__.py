"""Tests of dashboard/: each page driven by AppTest, the report, the charts, and pages over damaged runs."""
