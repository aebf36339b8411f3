"""Real-browser tests: Playwright drives Debian's Chromium against the served dashboard (harness.py)."""
