"""GitHub's REST API: the one client the pollers and bisects share, and its job objects."""
