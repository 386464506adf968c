"""The developers' tools, shared by the tests, the benchmarks and hack/: a synchronous Colonies client, a private
Colonies server, and cluster helpers. Not part of the operator's package, wheel or image."""
