"""AWS adapters: one class per service concern; each takes its boto3 client in ``__init__``."""
