"""Step verdicts as data (mockbench/scenarios/verdicts.py): every code renders in English and in French, the
English text stays what scripts read, and the engine records codes, facts and the nearest miss."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mockbench.scenarios.verdicts import CODES, RENDER, annotate, render

ENTRY = {"seq": 7, "time": "2026-12-06T21:05:03.120Z", "channel": "pfi", "operation": "MDM^T10", "patient": "alice",
         "document": "1.2.3", "verdict": "refused", "code": "X"}
SAMPLES = {
    "VERDICT": {"verdict": "refused", "entry_code": "DMPNotAuthor", "wanted": "accepted"},
    "FINDING": {"rule": "DMP/VERSIONING", "message": "same bytes"},
    "NO_DOCUMENT_FROM_STEP": {"step": "depot"},
    "DOCUMENT_ABSENT": {"document": "cr"},
    "DOCUMENT_STATUS": {"document": "cr", "status": "approved", "wanted": "deleted"},
    "DOCUMENT_LACKS_CODE": {"document": "cr", "confidentiality": "MASQUE_PS"},
    "DOCUMENT_KEEPS_CODE": {"document": "cr", "confidentiality": "MASQUE_PS"},
    "DOCUMENT_VERSION": {"document": "cr", "version": 1, "wanted": 2},
    "PATIENT_DMP": {"patient": "alice", "dmp": "active", "wanted": "closed"},
    "SECRET_CONNECTION": {"patient": "leo", "on": False},
    "AUTHORIZATION": {"subject": "chu", "patient": "alice", "status": "VALIDE", "wanted": "NON_EXISTE"},
    "NO_PATIENT": {"patient": "zoe"},
    "TRACE_MISSING": {"action": "consultation", "patient": "alice", "since_step": "depot", "document": "cr",
                      "actor": "dr", "mode": "normal",
                      "seen": [{"action": "alimentation", "actor": "dr", "mode": "normal", "document": "cr",
                                "time": "2026-12-06T21:05:03Z"}]},
    "MAIL_ABSENT": {"message_id": "<m1@chu>"},
    "MAIL_HEADER": {"header": "X-MSS-MES", "value": None, "wanted": "FIN"},
    "NOT_OBSERVED": {"expected": {"operation": ["MDM^T04", "ORU^R01"], "patient": "alice"}, "actor": None,
                     "nearest": ENTRY, "earlier": None},
}


def test_every_code_has_a_sample_and_renders_in_both_languages():
    assert set(SAMPLES) == set(CODES) == set(RENDER)
    for code, facts in SAMPLES.items():
        en, fr = render([{"code": code, **facts}], "en"), render([{"code": code, **facts}], "fr")
        assert en and fr and en != fr, code
        # French words the English text never has, and the reverse
        assert not any(w in en.split() for w in ("est", "le", "la", "du", "aucun", "aucune", "attendu")), en
        assert not any(w in fr.split() for w in ("is", "the", "was", "expected", "no")), fr


def test_the_english_text_is_the_one_scripts_read():
    assert render([{"code": "DOCUMENT_STATUS", **SAMPLES["DOCUMENT_STATUS"]}]) == \
        "document cr is approved, deleted was expected"
    assert render([{"code": "NOT_OBSERVED", **SAMPLES["NOT_OBSERVED"]}]) == \
        "not observed: expected MDM^T04 or ORU^R01 for alice; nearest: MDM^T10 for alice on 1.2.3 refused (X) at 21:05:03"


def test_a_finding_renders_its_french_text_when_it_has_one():
    facts = {"code": "FINDING", "rule": "DMP/VERSIONING", "message": "same bytes", "message_fr": "mêmes octets"}
    assert render([facts], "fr") == "constat DMP/VERSIONING : mêmes octets"
    assert render([facts], "en") == "finding DMP/VERSIONING: same bytes"


def test_the_french_text_names_the_exchange_and_paris_time():
    fr = render([{"code": "NOT_OBSERVED", **SAMPLES["NOT_OBSERVED"]}], "fr")
    # 21:05:03 UTC on 6 December is 22:05:03 in Paris (CET)
    assert fr == ("non observée : attendu : MDM^T04 ou ORU^R01 pour alice ; le plus proche : échange n° 7, MDM^T10 "
                  "pour alice sur 1.2.3 refusé (X) à 22:05:03")
    assert render([{"code": "DOCUMENT_STATUS", **SAMPLES["DOCUMENT_STATUS"]}], "fr") == \
        "le document cr est actif, supprimé était attendu"


def test_annotate_writes_code_texts_and_nearest():
    step: dict = {"id": "s"}
    annotate(step, [{"code": "NOT_OBSERVED", **SAMPLES["NOT_OBSERVED"]}, {"code": "NO_PATIENT", "patient": "zoe"}])
    assert step["reason_code"] == "NOT_OBSERVED" and step["nearest_seq"] == 7
    assert step["reason"].endswith("; no patient zoe") and step["reason_fr"].endswith(" ; aucun patient zoe")
    annotate(step, [])
    assert (step["reason"], step["reason_fr"], step["reason_code"], step["nearest_seq"]) == (None, None, None, None)


@given(st.lists(st.sampled_from(sorted(SAMPLES)), max_size=5))
def test_any_list_of_problems_renders(codes):
    problems = [{"code": c, **SAMPLES[c]} for c in codes]
    for lang in ("en", "fr"):
        text = render(problems, lang)
        assert (text is None) == (not codes)


@pytest.mark.parametrize("lang,word", [("en", "earlier step"), ("fr", "étape précédente")])
def test_a_step_after_an_undecided_one_says_so(lang, word):
    facts = {**SAMPLES["NOT_OBSERVED"], "earlier": "depot", "nearest": None}
    assert word in render([{"code": "NOT_OBSERVED", **facts}], lang)
