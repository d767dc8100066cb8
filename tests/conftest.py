"""Settings for the whole suite."""

from hypothesis import HealthCheck, settings

# Property tests check what the code does, not how fast: a per-example deadline or a "generation is
# slow" health check turns a loaded CI machine into a failure (timings belong in `make bench`).
settings.register_profile(
    "swarmkeeper", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile("swarmkeeper")
