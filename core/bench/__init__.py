"""`python -m core.bench`: how fast and how accurate the recipes are, measured through the engine itself.

Two modes, one table each (markdown on stdout; `--out PATH` also writes PATH.md and PATH.json):

- default ("gpu" mode, on `--device`, auto = cuda when there is one): a row per (model, recipe), several
  seeds each (`--seeds`): the best-gpu fastnet, the quick demo, the notebook's ELU ConvNet trained by the
  engine, the same ELU ConvNet trained "the tutorial way" (ImageFolder + DataLoader with 4 workers and a
  plain loop, for the side-by-side ratio) and a standard ResNet-18 recipe.
- `--cpu` (= `--mode cpu`): the laptop goals. The quick-demo preset exactly as the dashboard offers it,
  trained twice per seed: from the command line (core.training.engine.start_run in the main thread, wall clock from
  the call to the completed run) and from the dashboard's JobManager in a background thread while the
  main thread reads the run folder every second like the live page does.

Engine rows train with `start_run` into a temporary runs folder (`--runs-dir` keeps them), so the figures
are what users get. Training seconds come from the run's own records: the per-epoch "seconds" of its val
records plus the "seconds" of test_summary.json (the test evaluation, with TTA when the recipe has it).
Loading the data from disk (the decode cache, or extracting the archive for the tutorial way) and the
untimed warm-up run (CUDA context, cuDNN and torch.compile start-up) are reported in their own columns.

Timings on a shared machine are only as good as its idle time: every run records how many cores other
processes kept busy meanwhile (Linux /proc/stat less this process's own CPU time), and the table shows the
largest per row; the JSON also keeps the 1-minute load average each run started under.

Modules: rows (what is trained, and how users train it), measure (one run's numbers), tutorial (the
plain-loop reference), report (table, verdicts, JSON), resume_check (stop and resume on a device), cli.
"""
