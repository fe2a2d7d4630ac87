"""The fault suite: kill -9 under write load with an audit of acknowledged writes, every tool
fuzzed from its input schema, and a bounded soak over streamable HTTP. The tests here run
small versions in CI; ``python -m bench.faults`` runs the same code for longer."""
