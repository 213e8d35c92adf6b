"""What vendors import in their own tests: a client for a running bench, a pytest plugin
(`mockbench.testing.plugin`, registered automatically when mockbench is installed) with fixtures, and
`sign_vihf`, which signs a VIHF with a seal certificate the bench's DMP door trusts."""

from .client import BenchClient, BenchHTTPError

__all__ = ["BenchClient", "BenchHTTPError", "sign_vihf"]


def __getattr__(name: str):
    if name == "sign_vihf":   # imported on use: cryptography costs start-up time to every pytest run
        from .vihf import sign_vihf

        return sign_vihf
    raise AttributeError(name)
