"""The worker: arq settings, the job runner and the task contexts."""
