"""Business rules: the job service, shared by both dialects."""
