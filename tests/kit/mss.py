"""The MSSanté side of the kit: a microbiology report's IHE_XDM.ZIP (the shipped builder) and its mail sent
to a hospital mailbox through the control API (POST /_bench/mss/send), as the control and dashboard tests
send it."""

from __future__ import annotations

import base64

import requests

from mockbench.testing import messages

HOSPITAL = "dpi@chu-test.mssante.fr"
SENDER = "biolo@labo.mssante.fr"
BIOLOGIST = {"idnps": "810001234567", "family_name": "BIOLO", "given_name": "Marc"}


def xdm_package(patient: dict, unique_id: str, action: str | None = None) -> bytes:
    """A microbiology report's IHE_XDM.ZIP from the shipped builder (mockbench.testing.messages)."""
    return messages.xdm_package(patient, BIOLOGIST, unique_id, action=action, type_code="11502-2",
                                title="CR de microbiologie")


def send_xdm_mail(bench, package: bytes | None, subject: str = "XDM/1.0/DDM+CR de microbiologie") -> str:
    """The package (None: bytes that are not a zip) mailed from SENDER to HOSPITAL; the stored message's id."""
    body = {"from": SENDER, "to": [HOSPITAL], "subject": subject,
            "package": base64.b64encode(package or b"not a zip").decode()}
    response = requests.post(bench.url + "/_bench/mss/send", json=body, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()[0]["id"]
