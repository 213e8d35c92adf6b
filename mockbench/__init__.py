"""mockbench: one scripted world behind faithful fakes of the DMP, a PFI, MSSanté and Pro Santé Connect."""

__version__ = "0.1.0"
