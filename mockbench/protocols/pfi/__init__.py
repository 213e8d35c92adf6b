"""The PFI door: HL7 v2 over MLLP from hospital software (DPI), answered with ACKs and later ZAMs."""
