"""The test settings with a URLconf that adds the benchmarks' bare ceiling view."""

from caspix.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
# Quiet logs: the benchmark measures serving, not log writing.
LOGGING["root"]["level"] = "WARNING"  # noqa: F405
