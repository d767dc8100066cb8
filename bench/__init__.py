"""swarmkeeper's benchmarks (``make bench``, ``python -m bench``): a consumer of the lab.

Parts, each a module:
- ``static`` (no root, quick): cold import of the heaviest handler against a bare ``import boto3`` in
  fresh Lambda-like interpreters; what is deployed per function (function code + layers).
- ``world`` (no root): the moto-backed unit world of tests/unit (in a child process): AWS API calls per
  join and per removal, counted with a botocore hook; one reconcile pass over 1,000 instances/nodes.
- ``sizes`` and ``burst`` (root): the embedded lab with real dockerd nodes (prefix ``skb``, bridge
  ``skbbr0``, subnet 10.94.0.0/24), driven by ``lab_driver``: single joins and crash removals at
  several cluster sizes, the same bootstrap-node + verify-node scripts run directly on a fresh node (the
  baseline), a burst of 50 workers, and the same 50 joins run directly on 50 fresh nodes at once (the
  direct burst: what they cost the machine without the control plane), with the burst's evidence
  (``records``: per-node steps; ``machine``: CPU, the neighbour table, other labs).
  ``--part burst`` runs only what the burst figures need.

``cli`` runs them and saves the results; ``report`` (prose in ``report.md.tmpl``, reasons for missed
goals in ``reasons``) and ``chart`` (matplotlib) write docs/benchmarks.md and its chart.
"""
