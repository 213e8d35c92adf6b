"""The Annuaire Santé door: the national health directory's FHIR R4 search API (MSS/UX.10)."""
