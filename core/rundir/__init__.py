"""The run folder: `runs/<id>/`, the contract between the engine and everything that reads it.

Everything else in core and the dashboard reads and writes runs through this package; it imports
nothing from the rest of core.

- layout       every file and folder name of a run
- state        RunState, the states a run can be in
- files        atomic writes, checked reads, disk-full and read-only sentences
- config       TrainConfig: what config.json holds
- records      the JSON files (status, meta, config, test summary, metrics): checked as read, written atomically
- catalog      the runs folder as read: run ids and names, links refused, every run listed and summarised
- lifecycle    a run's writers: create, status and metrics updates, rename, delete, resume/restart refusals
- checkpoints  model and optimiser state, saved and read back
- predictions  the saved per-picture predictions
- progress     how far a run has come, from its status
"""
