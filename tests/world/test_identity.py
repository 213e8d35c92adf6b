"""Tests for mockbench.world.identity: check digits, messages, XDS patientId and the Faker provider."""

from __future__ import annotations

import datetime
import json
import os
import random
import re
import subprocess
import sys

import faker
import faker.generator
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mockbench.world.identity import (
    OID_IDNPS,
    OID_IDNST,
    OID_INS_C,
    OID_INS_NIA,
    OID_INS_NIR,
    OID_INS_NIR_DEMO,
    OID_INS_NIR_TEST,
    FrenchHealthProvider,
    IdentifierError,
    check_adeli,
    check_finess,
    check_idnps,
    check_idnst,
    check_nir,
    check_rpps,
    check_siret,
    idnps_from_adeli,
    idnps_from_rpps,
    idnst_from_finess,
    idnst_from_siret,
    is_valid_adeli,
    is_valid_finess,
    is_valid_idnps,
    is_valid_idnst,
    is_valid_nir,
    is_valid_rpps,
    is_valid_siren,
    is_valid_siret,
    luhn_digit,
    luhn_valid,
    make_faker,
    nir_key,
    parse_xds_patient_id,
    xds_patient_id,
)

DIGITS = "0123456789"


def digits(n: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=DIGITS, min_size=n, max_size=n)


def mutations(value: str):
    """Every string that differs from ``value`` by exactly one digit."""
    for i, char in enumerate(value):
        if char in DIGITS:
            for other in DIGITS:
                if other != char:
                    yield value[:i] + other + value[i + 1 :]


# --- constants ---------------------------------------------------------------------------------


def test_oids():
    assert OID_INS_NIR == "1.2.250.1.213.1.4.8"
    assert OID_INS_NIA == "1.2.250.1.213.1.4.9"
    assert OID_INS_NIR_TEST == "1.2.250.1.213.1.4.10"
    assert OID_INS_NIR_DEMO == "1.2.250.1.213.1.4.11"
    assert OID_INS_C == "1.2.250.1.213.1.4.2"
    assert OID_IDNPS == "1.2.250.1.71.4.2.1"
    assert OID_IDNST == "1.2.250.1.71.4.2.2"


def test_identifier_error_is_a_value_error():
    assert issubclass(IdentifierError, ValueError)


# --- NIR ---------------------------------------------------------------------------------------


def test_nir_key_known_values():
    # 2770763220829 = 97 * 28564569286 + 87, so the key is 97 - 87 = 10.
    assert nir_key("2770763220829") == 10
    # 2070585756270 = 97 * 21346244910 exactly: remainder 0 gives key 97, never 00.
    assert nir_key("2070585756270") == 97


@pytest.mark.parametrize("nir", ["277076322082910", "207058575627097"])
def test_known_valid_nirs(nir):
    check_nir(nir)
    assert is_valid_nir(nir)


def test_nir_corsica():
    # 2A counts as 19: 1850519004123 = 97 * 19077515506 + 41, key 97 - 41 = 56.
    assert nir_key("185052A004123") == 56 == nir_key("1850519004123")
    # 2B counts as 18, one million less; 10**6 = 27 (mod 97), remainder 41 - 27 = 14, key 83.
    assert nir_key("185052B004123") == 83 == nir_key("1850518004123")
    check_nir("185052A00412356")
    check_nir("185052B00412383")
    assert not is_valid_nir("185052A00412383")
    assert not is_valid_nir("185052B00412356")


def test_nir_letters_only_allowed_as_corsican_department():
    with pytest.raises(IdentifierError, match=r"character 7 is 'C', a digit was expected \(department"):
        check_nir("185052C00412356")
    with pytest.raises(IdentifierError, match=r"character 1 is 'A', a digit was expected$"):
        check_nir("A85052A00412356")
    # Lowercase is not the official spelling.
    assert not is_valid_nir("185052a00412356")
    with pytest.raises(IdentifierError, match="character 5 is ' '"):
        check_nir("2770 7632208291")


def test_nir_messages():
    with pytest.raises(IdentifierError) as exc:
        check_nir("123")
    assert str(exc.value) == "123 is not a valid NIR: it has 3 characters, 15 expected"
    with pytest.raises(IdentifierError) as exc:
        check_nir("277076322082911")
    assert str(exc.value) == "277076322082911 is not a valid NIR, its key should be 10"
    with pytest.raises(IdentifierError) as exc:
        check_nir("207058575627000")
    assert str(exc.value) == "207058575627000 is not a valid NIR, its key should be 97"
    # Keys below 10 are written on two digits: 1800175123456 has key 60, each +1 lowers it by 1.
    assert nir_key("1800175123511") == 5
    with pytest.raises(IdentifierError) as exc:
        check_nir("180017512351150")
    assert str(exc.value) == "180017512351150 is not a valid NIR, its key should be 05"
    with pytest.raises(IdentifierError, match="^An empty string is not a valid NIR: it has 0 characters"):
        check_nir("")


@pytest.mark.parametrize("value", [None, 277076322082910, b"277076322082910"])
def test_nir_non_strings(value):
    assert not is_valid_nir(value)
    with pytest.raises(IdentifierError, match="a string is expected"):
        check_nir(value)


def test_nir_key_rejects_bad_bodies():
    with pytest.raises(IdentifierError, match="it has 12 characters, 13 expected"):
        nir_key("277076322082")
    with pytest.raises(IdentifierError, match="character 13 is 'X'"):
        nir_key("277076322082X")


nir_bodies = st.builds(
    lambda sex, year, month, dept, commune, order: (
        f"{sex}{year:02d}{month:02d}{dept}{commune:03d}{order:03d}"
    ),
    st.sampled_from("12"),
    st.integers(0, 99),
    st.integers(1, 12),
    st.sampled_from(["01", "19", "20", "2A", "2B", "35", "75", "95", "99"]),
    st.integers(1, 999),
    st.integers(1, 999),
)


@given(nir_bodies)
def test_any_single_digit_change_breaks_a_nir(body):
    nir = f"{body}{nir_key(body):02d}"
    check_nir(nir)
    # 10**k is prime to 97, so changing one body digit changes n mod 97; changing a key digit
    # changes the key itself. Digits inside 2A/2B become e.g. "3A", which is malformed.
    for mutant in mutations(nir):
        assert not is_valid_nir(mutant), mutant


# --- Luhn --------------------------------------------------------------------------------------


def test_luhn_reference_example():
    # The textbook example: 7992739871 + check digit 3.
    assert luhn_digit("7992739871") == 3
    assert luhn_valid("79927398713")
    assert not luhn_valid("79927398710")


@pytest.mark.parametrize("value", ["", "7", "7992739871a", " 79927398713", None, 79927398713])
def test_luhn_valid_rejects_non_numbers(value):
    assert not luhn_valid(value)


def test_luhn_digit_rejects_non_digits():
    with pytest.raises(IdentifierError):
        luhn_digit("")
    with pytest.raises(IdentifierError, match="character 2 is 'x'"):
        luhn_digit("1x")


@given(st.text(alphabet=DIGITS, min_size=1, max_size=20))
def test_luhn_digit_makes_a_valid_number_and_catches_every_single_digit_change(body):
    number = body + str(luhn_digit(body))
    assert luhn_valid(number)
    for mutant in mutations(number):
        assert not luhn_valid(mutant), mutant


# --- RPPS, ADELI, SIREN, SIRET, FINESS ---------------------------------------------------------


def test_rpps_known_values():
    # Body 0123456789, from the right doubling 9,7,5,3,1 -> 9+5+1+6+2 = 23, plus 8+6+4+2+0 = 20:
    # 43, so the check digit is 7 (the ANS test card RPPS 01234567897).
    check_rpps("01234567897")
    # Body 0123456489: doubled 9,4,5,3,1 -> 9+8+1+6+2 = 26, plus 20: 46, check digit 4, not 5.
    with pytest.raises(IdentifierError) as exc:
        check_rpps("01234564895")
    assert str(exc.value) == "01234564895 is not a valid RPPS, its check digit should be 4"
    # Body 1000123456: doubled 6,4,2,0,0 -> 3+8+4 = 15, plus 5+3+1+0+1 = 10: 25, check digit 5.
    with pytest.raises(IdentifierError) as exc:
        check_rpps("10001234567")
    assert str(exc.value) == "10001234567 is not a valid RPPS, its check digit should be 5"
    assert is_valid_rpps("10001234565")


def test_rpps_format_messages():
    with pytest.raises(IdentifierError) as exc:
        check_rpps("1234")
    assert str(exc.value) == "1234 is not a valid RPPS: it has 4 characters, 11 expected"
    with pytest.raises(IdentifierError) as exc:
        check_rpps("1000123456X")
    assert str(exc.value) == "1000123456X is not a valid RPPS: character 11 is 'X', a digit was expected"
    assert not is_valid_rpps(None)


def test_adeli():
    # 75 (Paris) 10 0001 + key: body 75100001, doubled 1,0,0,5 -> 2+0+0+1 = 3, plus 0+0+1+7 = 8: 11 -> 9.
    check_adeli("751000019")
    assert not is_valid_adeli("751000018")
    with pytest.raises(
        IdentifierError, match="^751000018 is not a valid ADELI, its check digit should be 9$"
    ):
        check_adeli("751000018")
    with pytest.raises(IdentifierError, match="it has 10 characters, 9 expected"):
        check_adeli("7510000190")


def test_siren_and_siret():
    # Public hospital SIRENs from the FR Core examples.
    assert is_valid_siren("264403106")
    assert is_valid_siren("263500076")
    # INSEE's own example: SIREN 732 829 320, 7th establishment 0007, check digit 4.
    check_siret("73282932000074")
    with pytest.raises(IdentifierError) as exc:
        check_siret("73282932000075")
    assert str(exc.value) == "73282932000075 is not a valid SIRET, its check digit should be 4"
    with pytest.raises(IdentifierError, match="it has 9 characters, 14 expected"):
        check_siret("732829320")


def test_siret_la_poste_exception():
    # La Poste's head office passes Luhn; its other sites only have a digit sum multiple of 5.
    check_siret("35600000000048")
    check_siret("35600000000047")  # 3+5+6+4+7 = 25
    with pytest.raises(IdentifierError, match="should be 2 or 7 \\(La Poste digit-sum rule\\)"):
        check_siret("35600000000049")  # 3+5+6+4 = 18: 2 or 7 reach a multiple of 5


def test_finess_known_values():
    # Real FINESS from public examples: CHRU Rennes, and two more from ANS/FR Core samples.
    for finess in ("350005179", "060016219", "300017985"):
        check_finess(finess)
    with pytest.raises(IdentifierError) as exc:
        check_finess("350005178")
    assert str(exc.value) == "350005178 is not a valid FINESS, its check digit should be 9"
    with pytest.raises(IdentifierError, match="^12 is not a valid FINESS: it has 2 characters, 9 expected$"):
        check_finess("12")


def test_finess_corsica():
    # 2A counts as 21: body 21000001, doubled 1,0,0,1 -> 2+0+0+2 = 4, plus 0+0+0+2 = 2: 6 -> 4.
    check_finess("2A0000014")
    # 2B counts as 22: body 22000002, doubled 2,0,0,2 -> 8, plus 0+0+0+2 = 2: 10 -> 0.
    check_finess("2B0000020")
    with pytest.raises(IdentifierError) as exc:
        check_finess("2A0000015")
    assert str(exc.value) == "2A0000015 is not a valid FINESS, its check digit should be 4"
    with pytest.raises(IdentifierError, match="character 2 is 'C', a digit was expected \\(department"):
        check_finess("2C0000014")
    with pytest.raises(IdentifierError, match="character 5 is 'A'"):
        check_finess("2A00A0014")


def luhn_numbers(length: int) -> st.SearchStrategy[str]:
    return digits(length - 1).map(lambda body: body + str(luhn_digit(body)))


finess_numbers = st.builds(
    lambda dept, rest: dept + rest,
    st.sampled_from(["01", "13", "2A", "2B", "35", "75", "97"]),
    digits(6),
).map(lambda body: body + str(luhn_digit(body.replace("2A", "21", 1).replace("2B", "22", 1))))


@given(luhn_numbers(11))
def test_any_single_digit_change_breaks_an_rpps(rpps):
    check_rpps(rpps)
    assert not any(is_valid_rpps(m) for m in mutations(rpps))


@given(luhn_numbers(9))
def test_any_single_digit_change_breaks_an_adeli(adeli):
    check_adeli(adeli)
    assert not any(is_valid_adeli(m) for m in mutations(adeli))


@given(luhn_numbers(14).filter(lambda s: not s.startswith("356")))
def test_any_single_digit_change_breaks_a_siret(siret):
    # SIRETs near La Poste's SIREN follow another rule, so they are left out here.
    check_siret(siret)
    assert not any(is_valid_siret(m) for m in mutations(siret))


@given(finess_numbers)
def test_any_single_digit_change_breaks_a_finess(finess):
    check_finess(finess)
    assert not any(is_valid_finess(m) for m in mutations(finess))


# --- IDNPS / IDNST -----------------------------------------------------------------------------


def test_idnps_builders():
    assert idnps_from_rpps("01234567897") == "801234567897"
    assert idnps_from_adeli("751000019") == "0751000019"
    with pytest.raises(IdentifierError, match="01234564895 is not a valid RPPS"):
        idnps_from_rpps("01234564895")
    with pytest.raises(IdentifierError):
        idnps_from_adeli("751000018")


def test_idnst_builders():
    assert idnst_from_finess("350005179") == "1350005179"
    assert idnst_from_siret("73282932000074") == "373282932000074"
    with pytest.raises(IdentifierError):
        idnst_from_finess("350005178")
    with pytest.raises(IdentifierError):
        idnst_from_siret("73282932000075")


@pytest.mark.parametrize(
    "idnps",
    [
        "801234567897",  # 8 + RPPS (ANS test card)
        "0751000019",  # 0 + ADELI
        "3350005179/12345",  # 3 + FINESS / local id
        "3350005179/AB-12",  # local ids are the structure's own format
        "573282932000074/0042",  # 5 + SIRET / local id
    ],
)
def test_valid_idnps(idnps):
    check_idnps(idnps)
    assert is_valid_idnps(idnps)


def test_invalid_idnps_messages():
    # The 12-digit IDNPS is not Luhn-valid as a whole: the check is on the RPPS part.
    assert not luhn_valid("801234567897")
    with pytest.raises(IdentifierError) as exc:
        check_idnps("801234564895")
    assert str(exc.value) == (
        "801234564895 is not a valid IDNPS: 01234564895 is not a valid RPPS, its check digit should be 4"
    )
    with pytest.raises(IdentifierError, match="^901234567897 is not a valid IDNPS: unknown prefix '9'"):
        check_idnps("901234567897")
    with pytest.raises(IdentifierError, match="local identifier after the prefix is empty"):
        check_idnps("3")
    with pytest.raises(IdentifierError, match="^An empty string is not a valid IDNPS$"):
        check_idnps("")
    with pytest.raises(IdentifierError, match="it has 10 characters, 11 expected"):
        check_idnps("80123456789")
    assert not is_valid_idnps(None)


def test_idnst():
    check_idnst("1350005179")
    check_idnst("2264403106")  # 2 + SIREN, as in the FR Core organization example
    check_idnst("373282932000074")
    assert not is_valid_idnst("1350005178")
    assert not is_valid_idnst("4350005179")
    with pytest.raises(
        IdentifierError, match="^1350005178 is not a valid IDNST: 350005178 is not a valid FINESS"
    ):
        check_idnst("1350005178")


# --- XDS patientId -----------------------------------------------------------------------------


def test_xds_patient_id_format():
    assert xds_patient_id("207058575627097") == "207058575627097^^^&1.2.250.1.213.1.4.10&ISO^NH"
    assert xds_patient_id("277076322082910", OID_INS_NIR) == "277076322082910^^^&1.2.250.1.213.1.4.8&ISO^NH"


def test_parse_xds_patient_id_round_trip():
    assert parse_xds_patient_id("207058575627097^^^&1.2.250.1.213.1.4.10&ISO^NH") == (
        "207058575627097",
        OID_INS_NIR_TEST,
    )
    for oid in (OID_INS_NIR, OID_INS_NIA, OID_INS_NIR_TEST, OID_INS_NIR_DEMO):
        assert parse_xds_patient_id(xds_patient_id("185052A00412356", oid)) == ("185052A00412356", oid)
    # INS-C is not NIR-shaped, so only its syntax is checked.
    insc = "1234567890123456789012"
    assert parse_xds_patient_id(xds_patient_id(insc, OID_INS_C)) == (insc, OID_INS_C)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "207058575627097",
        "207058575627097^^^&1.2.250.1.213.1.4.10&ISO",  # no ^NH
        "207058575627097^^^1.2.250.1.213.1.4.10&ISO^NH",  # no & before the OID
        "207058575627097^^^&1.2.250.1.213.1.4.10^NH",  # no &ISO
        "207058575627097^^^&1.2.250.1.213.1.4.10&ISO^PI",
        "^^^&1.2.250.1.213.1.4.10&ISO^NH",  # empty INS
        "207058575627097^^^&1.2.x&ISO^NH",  # not an OID
        "207058575627097^^^&1.2.250.1.213.1.4.10&ISO^NH ",
        None,
    ],
)
def test_parse_xds_patient_id_rejects_malformed(value):
    with pytest.raises(IdentifierError, match="not a valid XDS patientId"):
        parse_xds_patient_id(value)


def test_parse_xds_patient_id_checks_the_nir_key():
    with pytest.raises(IdentifierError) as exc:
        parse_xds_patient_id("207058575627096^^^&1.2.250.1.213.1.4.10&ISO^NH")
    assert str(exc.value) == (
        "207058575627096^^^&1.2.250.1.213.1.4.10&ISO^NH is not a valid XDS patientId: "
        "207058575627096 is not a valid NIR, its key should be 97"
    )


def test_xds_patient_id_rejects_bad_input():
    with pytest.raises(IdentifierError, match="its key should be 97"):
        xds_patient_id("207058575627096")
    with pytest.raises(IdentifierError, match="not a valid OID"):
        xds_patient_id("207058575627097", "1.2..3")
    with pytest.raises(IdentifierError, match="not a valid INS"):
        xds_patient_id("12^34", OID_INS_C)
    with pytest.raises(IdentifierError, match="not a valid INS"):
        xds_patient_id("", OID_INS_C)


# --- Faker provider ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fake() -> faker.Faker:
    return make_faker(20240501)


def test_make_faker_is_fr_fr_with_the_provider(fake):
    assert fake.locales == ["fr_FR"]
    assert any(isinstance(p, FrenchHealthProvider) for p in fake.get_providers())
    assert fake.phone_number()  # regular fr_FR providers still there


def test_generated_values_validate(fake):
    for _ in range(300):
        check_rpps(fake.rpps())
        check_adeli(fake.adeli())
        check_finess(fake.finess())
        check_siret(fake.siret())
        check_idnps(idnps_from_rpps(fake.rpps()))
        check_idnst(idnst_from_finess(fake.finess()))


def test_generated_finess_are_sometimes_corsican():
    fake = make_faker(1)
    finesses = [fake.finess() for _ in range(400)]
    assert {f[:2] for f in finesses} >= {"2A", "2B"}
    assert all(re.fullmatch(r"(\d\d|2A|2B)\d{7}", f) for f in finesses)


@settings(max_examples=60)
@given(
    seed=st.integers(0, 2**32),
    sex=st.sampled_from(["1", "2", "M", "F"]),
    birth_date=st.dates(datetime.date(1900, 1, 1), datetime.date(2099, 12, 31)),
)
def test_generated_nir_is_valid_and_consistent(seed, sex, birth_date):
    nir = make_faker(seed).nir(sex, birth_date)
    check_nir(nir)
    assert nir[0] == {"M": "1", "F": "2"}.get(sex, sex)
    assert nir[1:3] == f"{birth_date.year % 100:02d}"
    assert nir[3:5] == f"{birth_date.month:02d}"
    xds_patient_id(nir)  # usable as a DMP patientId


def test_generated_nir_department():
    fake = make_faker(2)
    recent = [fake.nir("1", datetime.date(1990, 6, 15))[5:7] for _ in range(400)]
    assert {"2A", "2B"} <= set(recent)
    assert "20" not in recent
    # Corsica was one department, 20, before 1976.
    old = [fake.nir("2", datetime.date(1950, 6, 15))[5:7] for _ in range(400)]
    assert "20" in old
    assert not {"2A", "2B"} & set(old)


def test_nir_rejects_unknown_sex(fake):
    with pytest.raises(ValueError, match="sex should be 1 or 2"):
        fake.nir("X", datetime.date(1990, 1, 1))


def test_mssante_address(fake):
    assert fake.mssante_address("Jean", "Martin") == "jean.martin@hopital.mssante.fr"
    assert fake.mssante_address("Éloïse", "Le Gœff", "chu-rennes.mssante.fr") == (
        "eloise.le-goeff@chu-rennes.mssante.fr"
    )
    assert fake.mssante_address("Jean-Pierre", "D'Arc") == "jean-pierre.d-arc@hopital.mssante.fr"
    with pytest.raises(ValueError):
        fake.mssante_address("", "---")


def test_mssante_address_from_generated_names(fake):
    for _ in range(200):
        address = fake.mssante_address(fake.first_name(), fake.last_name())
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*\.[a-z0-9]+(-[a-z0-9]+)*@hopital\.mssante\.fr", address)


# --- Seeding -----------------------------------------------------------------------------------


def sample(fake: faker.Faker) -> list[str]:
    values = []
    for _ in range(20):
        values += [
            fake.nir("2", datetime.date(1985, 3, 9)),
            fake.rpps(),
            fake.adeli(),
            fake.finess(),
            fake.siret(),
            fake.name(),
        ]
    return values


def test_same_seed_same_sequence():
    assert sample(make_faker(7)) == sample(make_faker(7))


def test_different_seeds_differ():
    assert sample(make_faker(7)) != sample(make_faker(8))


def test_two_fakers_do_not_share_state():
    a, b = make_faker(7), make_faker(7)
    sample(a)  # drawing from one bench must not move the other
    assert sample(b) == sample(make_faker(7))


def test_make_faker_leaves_global_faker_state_alone():
    shared = faker.generator.random.getstate()
    stdlib = random.getstate()
    fake = make_faker(99)
    sample(fake)
    assert fake.random is not faker.generator.random
    assert faker.generator.random.getstate() == shared
    assert random.getstate() == stdlib


def test_class_level_seed_does_not_affect_make_faker():
    expected = sample(make_faker(7))
    state = faker.generator.random.getstate()
    try:
        faker.Faker.seed(12345)
        assert sample(make_faker(7)) == expected
    finally:
        faker.generator.random.setstate(state)


def test_same_seed_same_values_in_another_process():
    # A fresh interpreter with another hash seed must produce the same world.
    code = (
        "import datetime, json\n"
        "from mockbench.world.identity import make_faker\n"
        "f = make_faker(7)\n"
        "print(json.dumps([f.nir('2', datetime.date(1985, 3, 9)), f.rpps(), f.adeli(), f.finess(),"
        " f.siret(), f.name()]))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    here = make_faker(7)
    expected = [
        here.nir("2", datetime.date(1985, 3, 9)),
        here.rpps(),
        here.adeli(),
        here.finess(),
        here.siret(),
        here.name(),
    ]
    assert out.stdout.strip() == json.dumps(expected)
