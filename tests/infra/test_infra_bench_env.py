"""The bench's stand-in environment for each deployed function (``bench.static.function_env``)."""

from __future__ import annotations

from infra_synth import Synth

from bench.static import function_env, lambda_env
from swarmkeeper.settings import RuntimeSettings


def test_every_function_starts_on_the_environment_the_bench_gives_it(demo: Synth):
    # Given every Lambda function of the synthesized template, references and all
    functions = demo.of_type("AWS::Lambda::Function")
    assert functions
    for logical_id, function in functions.items():
        variables = function["Properties"]["Environment"]["Variables"]
        # When the bench fills in what only a deployment would resolve
        env = lambda_env({"asset": "/var/task", "env": function_env(variables)})
        # Then the settings check at cold start accepts it, so the bench's cold import measures a start
        assert RuntimeSettings.from_env(env).cluster_name == "demo", logical_id
