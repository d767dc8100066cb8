"""``swarmkeeper``: the operators' command line for a swarmkeeper cluster.

It reads what the control plane keeps (the state table, the operators' timeline log group, the Auto
Scaling groups and instances it manages) and acts only through the control plane's own entry paths
(its functions, the stacks bucket, Auto Scaling's graceful termination). It is installed with
``pip install .`` and is no part of the Lambda layer; of the layer it uses the domain (typed state
items, the swarm view, the quorum rules) and the state table's adapter, nothing of the flows.
"""
