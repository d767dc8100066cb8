"""swarmkeeper control plane: the package every function imports (deployed as a Lambda layer).

Rooms: ``settings`` (environment), ``inputs`` (AWS events in -> domain stimuli), ``domain`` (pure models
and decisions, no boto3), ``adapters`` (one class per AWS concern, each takes its boto3 client),
``flows`` (gather facts -> decide -> execute), ``runtime`` (wires adapters and flows once per container).
"""
