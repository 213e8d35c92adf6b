"""An endpoint of an issuer, as Authlib shapes them: a class per endpoint that the provider registers
(`Provider.register_endpoint`), called with the exchange (the transaction, the request, what the journal entry
will say) and answering (status, body, headers) or raising an OAuthError."""

from __future__ import annotations

from typing import ClassVar

from ..exchange import Exchange, Result
from ..part import ProviderPart


class Endpoint(ProviderPart):
    name: ClassVar[str]                      # the endpoint's name in Profile.endpoints / wallet_endpoints
    # the operation its exchanges are journaled (and fault rules matched) under; None: not journaled
    journal: ClassVar[str | None]
    # Its signatures are made ahead, by a dry run on a snapshot, in a world shared by several processes
    # (Provider.handle): the token endpoint, whose two RSA signatures were half of its write transaction.
    speculative: ClassVar[bool] = False

    def __call__(self, ex: Exchange) -> Result:
        raise NotImplementedError
