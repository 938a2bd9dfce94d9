"""The scheduler process and its jobs: sync, review, digest."""
