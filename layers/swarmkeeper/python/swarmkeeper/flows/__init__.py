"""Orchestration: gather facts through adapters, call the pure decision, execute its actions."""
