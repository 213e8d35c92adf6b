"""The OIDC door: Pro Santé Connect (`/oidc/psc/auth/realms/esante-wallet`) and an establishment identity
provider (`/oidc/etab`). provider.py is the core (requests -> (status, body, headers)), routing to the endpoint
classes of endpoints/ and the token endpoint's grant classes of grants/; door.py adapts it; profiles.py reads
the configuration; clientauth.py authenticates clients; issuance.py shapes token responses; claims.py builds
claims from the world; login.py renders the login page; errors.py is the door's OAuth errors."""
