"""MSSanté in the world: addresses, delivery byte for byte, the simulated recipients' answers."""

import email
from email import policy

import pytest

from mockbench.formats.mime import xdm_mail
from mockbench.world import errors, events
from mockbench.world.model import Mailbox


@pytest.fixture
def mss(cast):
    with cast.tx() as tx:
        d = cast.world.directory
        d.add_mailbox(tx, Mailbox(address="dpi@chu.mssante.fr", type="APP", owner="chu", role="hospital"))
        d.add_mailbox(tx, Mailbox(address="erreurs@chu.mssante.fr", type="ORG", owner="chu", role="error"))
        d.add_mailbox(tx, Mailbox(address="dr.roux@clinique.mssante.fr", type="PER", owner="dr-c",
                                  role="correspondent"))
    return cast


def mail(to="dr.roux@clinique.mssante.fr", mdn=True):
    return xdm_mail(sender="dpi@chu.mssante.fr", to=[to], subject="XDM/1.0/DDM+CR DURAND Alice 19800504",
                    package=b"PK\x03\x04 not really a zip", disposition_notification_to="dpi@chu.mssante.fr" if mdn
                    else None)


def test_delivery_keeps_the_bytes_and_gives_uids(mss):
    world, raw = mss.world, mail(to="dpi@chu.mssante.fr")
    with mss.tx() as tx:
        first = world.mss.deliver(tx, "x@ext.mssante.fr", ["dpi@chu.mssante.fr"], raw)[0]
        second = world.mss.deliver(tx, "x@ext.mssante.fr", ["dpi@chu.mssante.fr"], raw)[0]
    with mss.tx() as tx:
        assert world.mss.raw(tx, first.id) == raw
        assert [m.uid for m in world.mss.messages(tx, "dpi@chu.mssante.fr")] == [1, 2]
        assert first.subject == "XDM/1.0/DDM+CR DURAND Alice 19800504" and second.size == len(raw)


def test_unknown_mssante_address_is_refused_and_outside_mail_is_caught(mss):
    with mss.tx() as tx, pytest.raises(errors.UnknownMailbox):
        mss.world.mss.deliver(tx, "a@b.fr", ["nobody@chu.mssante.fr"], mail())
    with mss.tx() as tx:
        (caught,) = mss.world.mss.deliver(tx, "dpi@chu.mssante.fr", ["someone@gmail.com"], b"Subject: code 1234\r\n\r\nx")
        assert caught.mailbox == "outside@mockbench.invalid"
        assert mss.world.directory.mailbox(tx, "outside@mockbench.invalid").role == "outside"


def test_patient_and_professional_addresses_resolve(mss):
    with mss.tx() as tx:
        box = mss.world.mss.mailbox_for(tx, f"{mss.world.directory.patient(tx, 'alice').ins}@patient.mssante.fr")
        assert box.owner == mss.world.directory.patient(tx, "alice").ins
        with pytest.raises(errors.UnknownMailbox):
            mss.world.mss.mailbox_for(tx, "123456789012345@patient.mssante.fr")


def test_a_correspondent_answers_an_mdn_when_asked(mss):
    seen = []
    mss.world.events.subscribe(events.MAIL_MDN, seen.append)
    with mss.tx() as tx:
        sent = mss.world.mss.deliver(tx, "dpi@chu.mssante.fr", ["dr.roux@clinique.mssante.fr"], mail())[0]
    with mss.tx() as tx:
        (report,) = mss.world.mss.messages(tx, "dpi@chu.mssante.fr")
        raw = mss.world.mss.raw(tx, report.id)
    parsed = email.message_from_bytes(raw, policy=policy.default)
    assert parsed.get_content_type() == "multipart/report"
    assert parsed.get_param("report-type") == "disposition-notification"
    assert b"Disposition: automatic-action/MDN-sent-automatically; processed\r\n" in raw
    assert [e.cause for e in seen] == [sent.message_id]


def test_fail_integration_answers_an_error_mdn_and_bounce_a_dsn(mss):
    with mss.tx() as tx:
        mss.world.mss.set_behaviour(tx, "dr.roux@clinique.mssante.fr", {"on_receive": "fail_integration",
                                                                        "error": "E12^Document illisible"})
        mss.world.mss.deliver(tx, "dpi@chu.mssante.fr", ["dr.roux@clinique.mssante.fr"], mail())
        mss.world.mss.set_behaviour(tx, "dr.roux@clinique.mssante.fr", {"on_receive": "bounce"})
        mss.world.mss.deliver(tx, "dpi@chu.mssante.fr", ["dr.roux@clinique.mssante.fr"], mail(mdn=False))
    with mss.tx() as tx:
        reports = [mss.world.mss.raw(tx, m.id) for m in mss.world.mss.messages(tx, "dpi@chu.mssante.fr")]
    assert b"processed/Error: E12^Document illisible" in reports[0]
    assert b"report-type=delivery-status" in reports[1] and b"Action: failed" in reports[1]
    subject = email.message_from_bytes(reports[0], policy=policy.default)["Subject"]
    assert subject.startswith("[KO Intégration système !][E12] XDM/1.0/DDM+")


def test_behaviour_is_checked(mss):
    with mss.tx() as tx, pytest.raises(errors.InvalidRequest):
        mss.world.mss.set_behaviour(tx, "dr.roux@clinique.mssante.fr", {"on_receive": "explode"})
    with mss.tx() as tx, pytest.raises(errors.InvalidRequest):
        mss.world.mss.set_behaviour(tx, "dr.roux@clinique.mssante.fr", {"error": "no caret"})


def test_flags_and_expunge(mss):
    with mss.tx() as tx:
        a, b = (mss.world.mss.deliver(tx, "x@y.mssante.fr", ["dpi@chu.mssante.fr"], mail())[0] for _ in range(2))
        mss.world.mss.set_flags(tx, a.id, ["\\Seen", "\\Deleted"])
        assert mss.world.mss.expunge(tx, "dpi@chu.mssante.fr") == [a.uid]
        assert [m.id for m in mss.world.mss.messages(tx, "dpi@chu.mssante.fr")] == [b.id]
        with pytest.raises(errors.NotFound):
            mss.world.mss.raw(tx, a.id)


def test_uids_and_messages_by_uid(mss):
    with mss.tx() as tx:
        sent = [mss.world.mss.deliver(tx, "x@y.mssante.fr", ["dpi@chu.mssante.fr"], mail())[0] for _ in range(3)]
        assert mss.world.mss.uids(tx, "dpi@chu.mssante.fr") == [1, 2, 3]
        assert [m.id for m in mss.world.mss.by_uids(tx, "dpi@chu.mssante.fr", [3, 1, 9])] == [sent[0].id, sent[2].id]
        assert mss.world.mss.by_uids(tx, "dpi@chu.mssante.fr", []) == []


def test_answers_are_journaled(mss):
    with mss.tx() as tx:
        mss.world.mss.set_behaviour(tx, "dr.roux@clinique.mssante.fr", {"on_receive": "fail_integration",
                                                                        "error": "E7^Illisible"})
        sent = mss.world.mss.deliver(tx, "dpi@chu.mssante.fr", ["dr.roux@clinique.mssante.fr"], mail())[0]
        mss.world.mss.set_behaviour(tx, "dr.roux@clinique.mssante.fr", {"on_receive": "bounce"})
        mss.world.mss.deliver(tx, "dpi@chu.mssante.fr", ["dr.roux@clinique.mssante.fr"], mail())
    with mss.tx() as tx:
        entries = [(e["operation"], e["direction"], e["code"], e["ref"]) for e in mss.world.journal.query(tx, channel="mss")]
    assert entries[0] == ("MDN", "out", "E7", sent.message_id) and entries[1][:3] == ("DSN", "out", "550")


def test_a_bounce_answers_the_configured_smtp_reply_in_its_dsn(mss):
    seen = []
    mss.world.events.subscribe(events.MAIL_DSN, seen.append)
    with mss.tx() as tx:
        mss.world.mss.set_behaviour(tx, "dr.roux@clinique.mssante.fr", {"on_receive": "bounce",
                                                                        "error": "552^5.2.2 mailbox full"})
        mss.world.mss.deliver(tx, "dpi@chu.mssante.fr", ["dr.roux@clinique.mssante.fr"], mail(mdn=False))
    with mss.tx() as tx:
        (report,) = mss.world.mss.messages(tx, "dpi@chu.mssante.fr")
        raw = mss.world.mss.raw(tx, report.id)
        (entry,) = mss.world.journal.query(tx, channel="mss", operation="DSN")
    assert b"Status: 5.2.2" in raw and b"Diagnostic-Code: smtp; 552 5.2.2 mailbox full" in raw
    assert entry["code"] == "552" and seen[0].data["error"] == "552^5.2.2 mailbox full"
    with mss.tx() as tx, pytest.raises(errors.InvalidRequest, match="a 5xx code"):
        mss.world.mss.set_behaviour(tx, "dr.roux@clinique.mssante.fr", {"on_receive": "bounce",
                                                                        "error": "E12^Document illisible"})


def test_uid_validity_is_kept_per_folder_and_uid_next_follows_the_counter(mss):
    """RFC 3501 2.3.1.1: UIDVALIDITY does not change while the UIDs hold; UIDNEXT is above every UID given,
    including those of messages expunged since (the folder's counter)."""
    world, box = mss.world, "dpi@chu.mssante.fr"
    with mss.tx() as tx:
        world.mss.create_folder(tx, box, "Traites")
        inbox, folder = world.mss.uid_validity(tx, box), world.mss.uid_validity(tx, box, "Traites")
        assert inbox >= 1 and folder >= 1
        assert world.mss.uid_next(tx, box, "INBOX", []) == 1
        for _ in range(3):
            world.mss.deliver(tx, "x@ext.mssante.fr", [box], mail(to=box))
        messages = world.mss.messages(tx, box, "INBOX")
        world.mss.set_flags(tx, messages[-1].id, ["\\Deleted"])
        assert world.mss.expunge(tx, box) == [3]
        assert world.mss.uid_next(tx, box, "INBOX", world.mss.messages(tx, box, "INBOX")) == 4
        assert world.mss.uid_next(tx, box, "Traites", []) == 1
    with mss.tx() as tx:
        assert (world.mss.uid_validity(tx, box), world.mss.uid_validity(tx, box, "Traites")) == (inbox, folder)


def test_who_an_access_token_opens_a_mailbox_for(mss):
    """DOMAIN.md section 3 and MSS/CONF.01, the rule both mail doors apply to XOAUTH2/OAUTHBEARER: a PER
    mailbox opens for its owner, an ORG mailbox for its structure's members, an APP mailbox never (it uses its
    client certificate)."""
    world = mss.world
    with mss.tx() as tx:
        per = world.directory.mailbox(tx, "dr.roux@clinique.mssante.fr")      # owner dr-c
        org = world.directory.mailbox(tx, "erreurs@chu.mssante.fr")           # owner chu
        app = world.directory.mailbox(tx, "dpi@chu.mssante.fr")
        assert world.mss.token_refusal(tx, per, "dr-c") is None
        assert world.mss.token_refusal(tx, per, "dr-a")[0] == "TOKEN_NOT_OWNER"
        assert world.mss.token_refusal(tx, per, "")[0] == "TOKEN_NOT_OWNER"
        assert world.mss.token_refusal(tx, org, "dr-a") is None and world.mss.token_refusal(tx, org, "dr-b") is None
        assert world.mss.token_refusal(tx, org, "dr-c")[0] == "TOKEN_NOT_MEMBER"
        assert world.mss.token_refusal(tx, org, "")[0] == "TOKEN_NOT_MEMBER"
        code, reason = world.mss.token_refusal(tx, app, "dr-a")
        assert code == "AUTH_MECHANISM_REFUSED" and "MSS/CONF.01" in reason
        assert world.mss.token_type_refusal(app) == (code, reason) and world.mss.token_type_refusal(per) is None
