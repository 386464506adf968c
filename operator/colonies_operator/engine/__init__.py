"""The engine: one runtime per ColoniesExecutor (registration, assignment, the scan, status), the per-attempt
reconciler with its work queue and log following, teardown, metrics and the heap. It does the I/O the pure core
decides; only the kopf adapters (handlers.py, cli.py) sit above it."""
