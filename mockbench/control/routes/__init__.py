"""The control API's areas, one blueprint each (control/api.py nests them)."""
