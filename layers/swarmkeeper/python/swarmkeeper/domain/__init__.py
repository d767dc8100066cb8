"""Pure domain: models, parsers of script output and decisions. Imports no boto3."""
