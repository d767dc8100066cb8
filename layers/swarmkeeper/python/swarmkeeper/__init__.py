"""swarmkeeper control plane: the package every function imports (deployed as a Lambda layer)."""
