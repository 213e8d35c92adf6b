"""The DMP door: the DMP web services over SOAP 1.2 with WS-Addressing, MTOM/XOP for ITI-41 and ITI-43."""
