"""Developer tooling shipped with the package: a private Colonies server for the demo, benchmarks and tests.
Never imported by the operator itself."""
