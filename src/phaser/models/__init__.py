"""Domain models (job, phases, errors) and the JSON wire models."""
