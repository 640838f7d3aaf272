"""The application: the CLI, the runner, executors and clusters, one cell's wiring of a method to
the harness, verify and perf. The only room that imports `methods/` and `leaderboard/`."""
