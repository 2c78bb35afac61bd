"""GitHub's REST API: the one client the pollers and bisects (and anything else) share."""
