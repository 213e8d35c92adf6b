"""The OIDC door: Pro Santé Connect (`/oidc/psc/auth/realms/esante-wallet`) and an establishment identity
provider (`/oidc/etab`). provider.py is the core (requests -> (status, body, headers)); door.py adapts it;
claims.py builds claims from the world; login.py renders the login page."""
