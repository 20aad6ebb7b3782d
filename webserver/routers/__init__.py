"""One router per resource (flows, executions, logs, workers and stats)."""
