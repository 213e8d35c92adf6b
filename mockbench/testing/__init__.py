"""What vendors import in their own tests: a client for a running bench, and a pytest plugin
(`mockbench.testing.plugin`, registered automatically when mockbench is installed) with fixtures."""

from .client import BenchClient, BenchHTTPError

__all__ = ["BenchClient", "BenchHTTPError"]
