"""The metadata a document entry needs for the world's DMP to take it (world/dmp.py: creationTime,
`REQUIRED_METADATA`), for tests that feed the world directly: `{"type_code": ..., **FEED}`."""

FEED = {"creation_time": "2026-11-20T10:00:00Z", "class_code": "10", "format_code": "urn:asip:ci-sis:2010",
        "facility_type": "SA01", "practice_setting": "ETABLISSEMENT", "language": "fr-FR"}
