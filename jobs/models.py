"""Tables of the job process (filled in with the scheduler work)."""
