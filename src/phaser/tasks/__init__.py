"""Tasks: the registry, the context tasks receive, and the demo tasks.

A service author registers a task like this::

    from pydantic import BaseModel
    from phaser.tasks import TaskContext, task

    class Params(BaseModel):
        n: int

    @task("square", parameters=Params)
    def square(params: Params, ctx: TaskContext) -> str:
        return str(params.n**2)
"""

from .context import TaskContext, TaskError, TransientError
from .registry import Task, TaskRegistry, default_registry, task
from .uploads import Upload

__all__ = [
    "Task",
    "TaskContext",
    "TaskError",
    "TaskRegistry",
    "TransientError",
    "Upload",
    "default_registry",
    "task",
]
