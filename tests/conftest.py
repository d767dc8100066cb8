"""Settings for the whole suite."""

from hypothesis import settings

# Property tests check what the code does, not how fast: a per-example deadline turns a loaded CI
# machine into a failure (timings belong in the benchmark, `make bench`).
settings.register_profile("swarmkeeper", deadline=None, print_blob=True)
settings.load_profile("swarmkeeper")
