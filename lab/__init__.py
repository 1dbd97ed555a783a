"""The lab: traffic simulation, scenarios, offline evaluation, benchmarks and workload generators.

Nothing here runs in production: the request path never imports this package (a test enforces
it). The CLI verbs ``simulate``, ``evaluate`` and ``bench`` are thin wrappers around it.
"""
