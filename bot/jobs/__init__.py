"""Jobs: a member's request from the queue to the images posted (or everything refunded).

    state.py   what a job is while it runs; the Reporter that shows it
    queue.py   the slots (`max_concurrent`) and the progress edits
    steps.py   its calls to Replicate, each interruptible by a cancel
    runner.py  the runner: start, cancel, stop, resume, and every ending settled
"""

from bot.jobs.runner import EDIT_INTERVAL, STOP_GRACE, JobRunner
from bot.jobs.state import CancelOutcome, Job, JobState, Reporter, Resume

__all__ = ["EDIT_INTERVAL", "STOP_GRACE", "CancelOutcome", "Job", "JobRunner", "JobState",
           "Reporter", "Resume"]
