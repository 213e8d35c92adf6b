"""The DMP's trust: the seal certificates that sign VIHFs, from the bench's own test PKI."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Blueprint, jsonify

from ..common import ApiError

if TYPE_CHECKING:
    from ...bench import Bench


def blueprint(bench: Bench) -> Blueprint:
    bp = Blueprint("pki", __name__)

    @bp.get("/pki/signing/<idnst>")
    def pki_signing(idnst: str):
        """A structure's seal certificate and key from the bench's own test PKI, issued on first use: what a
        DPI (or its tests) reaching the bench over the network, e.g. in a container, signs its VIHFs with.
        Test material only; behind the control token when the bench requires one."""
        from ...pki import PkiError

        try:
            identity = bench.vihf_signing_identity(idnst)
        except PkiError as exc:
            raise ApiError(409, "PKI_UNAVAILABLE", str(exc)) from None   # the message says why
        return jsonify(idnst=idnst, certificate=identity.cert_pem().decode("ascii"),
                       private_key=identity.key_pem().decode("ascii"),
                       ca=(bench.pki_dir / "ca.crt").read_text(encoding="ascii"))

    return bp
