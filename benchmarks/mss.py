"""The MSSanté SMTP figure's world and message, for the harness (python -m benchmarks.harness --only smtp).

One MSSanté mail as a DPI sends it: multipart/mixed, a short text and an IHE_XDM.ZIP of about 100 KB written
by mockbench's XDM writer (a CDA whose text is seeded random base64, so the zip does not shrink), the ANS
subject; from a professional's mailbox (AUTH PLAIN, the bench password) to the hospital's applicative mailbox.
mockbench does the real work on each: the XDM check (zip, METADATA.XML, hashes, the CDA header), the
delivery stored byte for byte, the journal. MailDev receives the very same bytes.
"""

from __future__ import annotations

import base64
import random
from functools import cache

SENDER = "jeanne.martin@chu.mssante.fr"
RECIPIENT = "dpi@chu.mssante.fr"
PACKAGE_TARGET = 100_000   # random bytes, base64 in the CDA: deflate brings the zip back to about this size
WORLD = f"""\
id: bench-mss
title: Banc SMTP MSSanté
seed: 11
world:
  structures: [{{id: chu, name: CHU de Test}}]
  professionals:
    - {{id: dr_a, family_name: MARTIN, given_name: Jeanne, structure: chu, mssante: {SENDER}}}
  mailboxes:
    - {{address: {RECIPIENT}, type: APP, owner: chu, role: hospital}}
"""


@cache
def package() -> bytes:
    from mockbench.formats.cda import minimal_cda
    from mockbench.formats.xdm import write_package

    text = base64.b64encode(random.Random(11).randbytes(PACKAGE_TARGET)).decode()
    text = " ".join(text[i:i + 76] for i in range(0, len(text), 76))
    cda = minimal_cda(unique_id="1.2.250.1.999.2.100", ins="279035121518989", ins_oid="1.2.250.1.213.1.4.10",
                      type_code="11488-4", title="Lettre de liaison", author_idnps="801234567897",
                      author_family="MARTIN", author_given="Jeanne", patient_family="PAT-TROIS",
                      patient_given="DOMINIQUE", birth_date="1979-03-28", sex="F",
                      effective_time="2024-01-04T15:05:27", text=text)
    return write_package([("DOC0001.XML", cda, {"unique_id": "1.2.250.1.999.2.100", "title": "Lettre de liaison"})],
                         submission_set={"unique_id": "1.2.250.1.999.1.100", "source_id": "1.2.250.1.999",
                                         "content_type": "04"},
                         patient_id="279035121518989^^^&1.2.250.1.213.1.4.10&ISO^NH")


@cache
def message() -> bytes:
    from mockbench.formats.mime import xdm_mail
    from mockbench.formats.xdm import ans_subject

    return xdm_mail(sender=SENDER, to=[RECIPIENT], package=package(),
                    subject=ans_subject("Lettre de liaison", "PAT-TROIS", "DOMINIQUE", "19790328"),
                    extra_headers={"X-MSS-CODECDA": "11488-4", "X-MSS-INS": "O", "X-MSS-MES": "FIN"})


def __getattr__(name: str) -> int:
    if name == "PACKAGE_BYTES":
        return len(package())
    raise AttributeError(name)
