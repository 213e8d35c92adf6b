"""The benchmark harness: mockbench side by side with its peers (`python -m benchmarks.harness`).

Standard library only at import time: the load process (`benchmarks.harness.driver`) imports this package.
"""
