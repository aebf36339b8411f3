"""The conductor: work that runs in the background of the dashboard, one kind of job a module.

    manager.py     JobManager, the one object the pages talk to
    job.py         Job, what every kind of job answers (alive? stop), and JobBook, the jobs of one kind
    training.py    the device queue: training runs, one at a time per device
    torchrun.py    a queued run trained by several processes (all GPUs) through torchrun
    kfold_runs.py  the K-fold runs of core.analysis.kfold, queued and stopped
    maps.py        a feature map computed for a run made before the map existed
    sweeps.py      sweep worker processes started from the dashboard

Jobs never touch Streamlit: what they produce reaches the pages through the run folders on disk (or,
for a map job's progress, through the job itself).
"""
from core.jobs.job import Job, JobBook
from core.jobs.manager import JobManager
from core.jobs.maps import MapJob, MapState
from core.jobs.sweeps import SweepWorker
from core.jobs.training import TrainingJob, device_key

__all__ = ["Job", "JobBook", "JobManager", "MapJob", "MapState", "SweepWorker", "TrainingJob", "device_key"]
