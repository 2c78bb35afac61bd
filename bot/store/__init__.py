"""SQLite storage: connections, raw results, trunk order, cells, alerts and their timelines."""
