"""French health identifiers: INS (NIR), RPPS, ADELI, FINESS, SIRET, IDNPS and IDNST.

Validators raise :class:`IdentifierError` with a plain-English message that the fakes can
return as-is to the system under test. :class:`FrenchHealthProvider` generates valid values
for the scripted world; :func:`make_faker` gives a seeded, per-bench ``Faker``.
"""

from __future__ import annotations

import datetime
import functools
import re
import unicodedata
from collections.abc import Callable
from typing import Any

__all__ = [
    "OID_IDNPS",
    "OID_IDNST",
    "OID_INS_C",
    "OID_INS_NIA",
    "OID_INS_NIR",
    "OID_INS_NIR_DEMO",
    "OID_INS_NIR_TEST",
    "IdentifierError",
    "check_adeli",
    "check_finess",
    "check_idnps",
    "check_idnst",
    "check_nir",
    "check_rpps",
    "check_siren",
    "check_siret",
    "idnps_from_adeli",
    "idnps_from_rpps",
    "idnst_from_finess",
    "idnst_from_siret",
    "is_valid_adeli",
    "is_valid_finess",
    "is_valid_idnps",
    "is_valid_idnst",
    "is_valid_nir",
    "is_valid_rpps",
    "is_valid_siren",
    "is_valid_siret",
    "luhn_digit",
    "luhn_valid",
    "make_faker",
    "nir_key",
    "parse_xds_patient_id",
    "xds_patient_id",
]

# INS assigning authorities (CI-SIS).
OID_INS_NIR = "1.2.250.1.213.1.4.8"
OID_INS_NIA = "1.2.250.1.213.1.4.9"
OID_INS_NIR_TEST = "1.2.250.1.213.1.4.10"
OID_INS_NIR_DEMO = "1.2.250.1.213.1.4.11"
OID_INS_C = "1.2.250.1.213.1.4.2"
# National professional and structure identifiers (ANS).
OID_IDNPS = "1.2.250.1.71.4.2.1"
OID_IDNST = "1.2.250.1.71.4.2.2"

# Authorities whose identifiers have the NIR shape (13 characters + mod-97 key).
_NIR_SHAPED_OIDS = frozenset({OID_INS_NIR, OID_INS_NIA, OID_INS_NIR_TEST, OID_INS_NIR_DEMO})

# Corsica was split into 2A/2B in 1976; the NIR key is computed on 19/18 in their place.
_NIR_CORSICA = {"2A": "19", "2B": "18"}
# FINESS keys are computed with the department letter replaced: 2A -> 21, 2B -> 22.
_FINESS_CORSICA = {"2A": "21", "2B": "22"}
# La Poste's SIRETs all share one SIREN and use a digit-sum rule instead of Luhn.
_LA_POSTE_SIREN = "356000000"

_OID_RE = re.compile(r"(0|[1-9]\d*)(\.(0|[1-9]\d*))+")
_XDS_PID_RE = re.compile(r"(?P<ins>[^^&]+)\^\^\^&(?P<oid>[^^&]+)&ISO\^NH")


class IdentifierError(ValueError):
    """An identifier is malformed or its check digit/key is wrong."""


def _shown(value: object) -> str:
    # An empty value would make "is not a valid X" read oddly, so name it.
    if value == "":
        return "An empty string"
    return str(value)


def _require_str(value: object, kind: str) -> str:
    if not isinstance(value, str):
        raise IdentifierError(
            f"{_shown(value)} is not a valid {kind}: a string is expected, got {type(value).__name__}"
        )
    return value


def _require_length(value: str, kind: str, expected: int) -> None:
    if len(value) != expected:
        raise IdentifierError(
            f"{_shown(value)} is not a valid {kind}: it has {len(value)} characters, {expected} expected"
        )


def _require_digits(value: str, kind: str, start: int = 0) -> None:
    for i, char in enumerate(value[start:], start=start):
        if char not in "0123456789":
            raise IdentifierError(
                f"{value} is not a valid {kind}: character {i + 1} is {char!r}, a digit was expected"
            )


def _is_valid(check: Callable[[Any], None], value: object) -> bool:
    # Any: each check rejects a value that is not a str itself (_require_str), with an IdentifierError
    try:
        check(value)
    except IdentifierError:
        return False
    return True


# --- NIR (INS) -------------------------------------------------------------------------------


def _check_nir_chars(value: str, kind: str) -> None:
    """Digits everywhere, except that the department (characters 6-7) may be 2A or 2B."""
    corsica = value[5:7] in _NIR_CORSICA
    for i, char in enumerate(value):
        if char in "0123456789" or (corsica and i in (5, 6)):
            continue
        where = " (department: 2A or 2B allowed)" if i in (5, 6) else ""
        raise IdentifierError(
            f"{value} is not a valid {kind}: character {i + 1} is {char!r}, a digit was expected{where}"
        )


def nir_key(body13: str) -> int:
    """The NIR key (1..97) of a 13-character NIR body; Corsica 2A/2B count as 19/18."""
    _require_str(body13, "NIR body")
    _require_length(body13, "NIR body", 13)
    _check_nir_chars(body13, "NIR body")
    department = body13[5:7]
    number = int(body13[:5] + _NIR_CORSICA.get(department, department) + body13[7:])
    # n mod 97 == 0 gives 97: a key is never 00.
    return 97 - number % 97


def check_nir(nir: str) -> None:
    """Raise IdentifierError unless ``nir`` is 13 characters plus a correct 2-digit key."""
    _require_str(nir, "NIR")
    _require_length(nir, "NIR", 15)
    _check_nir_chars(nir, "NIR")
    key = nir_key(nir[:13])
    if int(nir[13:]) != key:
        raise IdentifierError(f"{nir} is not a valid NIR, its key should be {key:02d}")


def is_valid_nir(nir: object) -> bool:
    return _is_valid(check_nir, nir)


# --- Luhn-checked numbers --------------------------------------------------------------------


def _luhn_sum(digits: str, double_rightmost: bool) -> int:
    total = 0
    for i, char in enumerate(reversed(digits)):
        d = ord(char) - 48
        if (i % 2 == 0) == double_rightmost:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total


def luhn_digit(body: str) -> int:
    """The Luhn check digit to append to ``body`` (digits only)."""
    _require_str(body, "Luhn body")
    if not body:
        raise IdentifierError("An empty string has no Luhn check digit")
    _require_digits(body, "Luhn body")
    # Once the check digit is appended, the body's rightmost digit sits in a doubled position.
    return -_luhn_sum(body, double_rightmost=True) % 10


def luhn_valid(number: str) -> bool:
    """True if ``number`` (digits only, at least 2) passes the Luhn check."""
    if not isinstance(number, str) or len(number) < 2 or not all(c in "0123456789" for c in number):
        return False
    return _luhn_sum(number, double_rightmost=False) % 10 == 0


def _check_luhn_number(value: object, kind: str, length: int) -> str:
    value = _require_str(value, kind)
    _require_length(value, kind, length)
    _require_digits(value, kind)
    expected = luhn_digit(value[:-1])
    if int(value[-1]) != expected:
        raise IdentifierError(f"{value} is not a valid {kind}, its check digit should be {expected}")
    return value


def check_rpps(rpps: str) -> None:
    """RPPS: 11 digits, the last a Luhn check digit."""
    _check_luhn_number(rpps, "RPPS", 11)


def check_adeli(adeli: str) -> None:
    """ADELI: 9 digits, the last a Luhn check digit."""
    _check_luhn_number(adeli, "ADELI", 9)


def check_siren(siren: str) -> None:
    """SIREN: 9 digits, the last a Luhn check digit."""
    _check_luhn_number(siren, "SIREN", 9)


def check_siret(siret: str) -> None:
    """SIRET: 14 digits with a Luhn check digit; La Poste's SIRETs use a digit sum multiple of 5."""
    siret = _require_str(siret, "SIRET")
    _require_length(siret, "SIRET", 14)
    _require_digits(siret, "SIRET")
    if siret.startswith(_LA_POSTE_SIREN):
        # INSEE exception: too many La Poste sites for Luhn; only the head office passes Luhn.
        if luhn_valid(siret) or sum(map(int, siret)) % 5 == 0:
            return
        expected = -sum(map(int, siret[:-1])) % 5
        raise IdentifierError(
            f"{siret} is not a valid SIRET, its check digit should be {expected} "
            f"or {expected + 5} (La Poste digit-sum rule)"
        )
    _check_luhn_number(siret, "SIRET", 14)


def _finess_luhn_body(finess: str) -> str:
    department = finess[:2]
    return _FINESS_CORSICA.get(department, department) + finess[2:]


def check_finess(finess: str) -> None:
    """FINESS: 9 characters (department 2A/2B allowed first), the last a Luhn check digit."""
    finess = _require_str(finess, "FINESS")
    _require_length(finess, "FINESS", 9)
    if finess[:2] in _FINESS_CORSICA:
        _require_digits(finess, "FINESS", start=2)
    else:
        for i, char in enumerate(finess):
            if char not in "0123456789":
                where = " (department: 2A or 2B allowed)" if i < 2 else ""
                raise IdentifierError(
                    f"{finess} is not a valid FINESS: character {i + 1} is {char!r}, "
                    f"a digit was expected{where}"
                )
    expected = luhn_digit(_finess_luhn_body(finess)[:-1])
    if int(finess[-1]) != expected:
        raise IdentifierError(f"{finess} is not a valid FINESS, its check digit should be {expected}")


def is_valid_rpps(rpps: object) -> bool:
    return _is_valid(check_rpps, rpps)


def is_valid_adeli(adeli: object) -> bool:
    return _is_valid(check_adeli, adeli)


def is_valid_siren(siren: object) -> bool:
    return _is_valid(check_siren, siren)


def is_valid_siret(siret: object) -> bool:
    return _is_valid(check_siret, siret)


def is_valid_finess(finess: object) -> bool:
    return _is_valid(check_finess, finess)


# --- IDNPS / IDNST ---------------------------------------------------------------------------


def idnps_from_rpps(rpps: str) -> str:
    check_rpps(rpps)
    return "8" + rpps


def idnps_from_adeli(adeli: str) -> str:
    check_adeli(adeli)
    return "0" + adeli


def idnst_from_finess(finess: str) -> str:
    check_finess(finess)
    return "1" + finess


def idnst_from_siret(siret: str) -> str:
    check_siret(siret)
    return "3" + siret


def _check_prefixed(value: object, kind: str, checks: dict) -> None:
    value = _require_str(value, kind)
    if not value:
        raise IdentifierError(f"An empty string is not a valid {kind}")
    prefix, rest = value[0], value[1:]
    if prefix not in checks:
        known = ", ".join(sorted(checks))
        raise IdentifierError(
            f"{value} is not a valid {kind}: unknown prefix {prefix!r}, expected one of {known}"
        )
    try:
        checks[prefix](rest)
    except IdentifierError as exc:
        raise IdentifierError(f"{value} is not a valid {kind}: {exc}") from exc


def _check_local_id(local_id: str) -> None:
    # Prefixes 3 and 5 carry a structure id plus a local id whose format is the structure's own.
    if not local_id:
        raise IdentifierError("the local identifier after the prefix is empty")


def check_idnps(idnps: str) -> None:
    """IDNPS: 8+RPPS, 0+ADELI, or 3/5 + structure-local identifier (any non-empty text)."""
    _check_prefixed(
        idnps, "IDNPS", {"8": check_rpps, "0": check_adeli, "3": _check_local_id, "5": _check_local_id}
    )


def check_idnst(idnst: str) -> None:
    """IDNST: 1+FINESS, 2+SIREN or 3+SIRET."""
    _check_prefixed(idnst, "IDNST", {"1": check_finess, "2": check_siren, "3": check_siret})


def is_valid_idnps(idnps: object) -> bool:
    return _is_valid(check_idnps, idnps)


def is_valid_idnst(idnst: object) -> bool:
    return _is_valid(check_idnst, idnst)


# --- XDS patientId ---------------------------------------------------------------------------


def _check_oid(oid: object) -> str:
    if not isinstance(oid, str) or not _OID_RE.fullmatch(oid):
        raise IdentifierError(f"{_shown(oid)} is not a valid OID")
    return oid


def xds_patient_id(ins: str, oid: str = OID_INS_NIR_TEST) -> str:
    """``ins^^^&oid&ISO^NH``, the CI-SIS form of an INS as XDS patientId."""
    _check_oid(oid)
    ins = _require_str(ins, "INS")
    if not ins or any(c in ins for c in "^&~\\|"):
        raise IdentifierError(f"{_shown(ins)} is not a valid INS: it must be non-empty, without ^ & ~ \\ |")
    if oid in _NIR_SHAPED_OIDS:
        check_nir(ins)
    return f"{ins}^^^&{oid}&ISO^NH"


def parse_xds_patient_id(value: str) -> tuple[str, str]:
    """Split ``ins^^^&oid&ISO^NH`` into ``(ins, oid)``, checking the NIR key for NIR-shaped INS."""
    value = _require_str(value, "XDS patientId")
    match = _XDS_PID_RE.fullmatch(value)
    if match is None:
        raise IdentifierError(
            f"{_shown(value)} is not a valid XDS patientId: expected the form INS^^^&OID&ISO^NH"
        )
    ins, oid = match["ins"], match["oid"]
    try:
        _check_oid(oid)
        if oid in _NIR_SHAPED_OIDS:
            check_nir(ins)
    except IdentifierError as exc:
        raise IdentifierError(f"{value} is not a valid XDS patientId: {exc}") from exc
    return ins, oid


# --- Faker provider --------------------------------------------------------------------------

# Characters NFKD does not decompose into ASCII.
_ASCII_LIGATURES = str.maketrans({"œ": "oe", "æ": "ae", "ß": "ss", "ø": "o", "đ": "d", "ł": "l"})


def _mail_part(name: str) -> str:
    text = unicodedata.normalize("NFKD", name.strip().lower().translate(_ASCII_LIGATURES))
    text = text.encode("ascii", "ignore").decode("ascii")
    # Spaces and apostrophes become hyphens ("Le Goff" -> "le-goff", "D'Arc" -> "d-arc").
    text = re.sub(r"[^a-z0-9]+", "-", text)
    return text.strip("-")


@functools.cache
def _provider_class() -> type:
    """FrenchHealthProvider, defined on first use: importing Faker costs a tenth of the bench's start-up, and
    only seeding needs it (issue 21, point 5)."""
    from faker.providers import BaseProvider

    class FrenchHealthProvider(BaseProvider):
        """Valid French health identifiers, drawn from the owning Faker's (seeded) random."""

        def _department(self, corsica_allowed: bool = True) -> str:
            # About 1 in 20 is Corsican so those code paths get exercised.
            if corsica_allowed and self.random_int(1, 20) == 1:
                return self.random_element(("2A", "2B"))
            number = self.random_int(1, 94)
            # 20 (pre-1976 Corsica) is not used for new identifiers.
            return f"{number + 1 if number >= 20 else number:02d}"

        def nir(self, sex: str, birth_date: datetime.date) -> str:
            """A NIR with a valid key; ``sex`` is 1/2 (or M/F), year and month from ``birth_date``."""
            sex_digit = {"1": "1", "2": "2", "M": "1", "F": "2"}.get(str(sex).upper())
            if sex_digit is None:
                raise ValueError(f"sex should be 1 or 2 (or M or F), got {sex!r}")
            department = self._department()
            if department in _NIR_CORSICA and birth_date.year < 1976:
                department = "20"  # born in Corsica before its split
            body = (
                f"{sex_digit}{birth_date.year % 100:02d}{birth_date.month:02d}{department}"
                f"{self.random_int(1, 990):03d}{self.random_int(1, 999):03d}"
            )
            return f"{body}{nir_key(body):02d}"

        def _luhn_number(self, body: str) -> str:
            return body + str(luhn_digit(body))

        def rpps(self) -> str:
            return self._luhn_number("10" + self.numerify("########"))

        def adeli(self) -> str:
            return self._luhn_number(self._department(corsica_allowed=False) + self.numerify("######"))

        def finess(self) -> str:
            body = self._department() + "0" + self.numerify("#####")
            return body + str(luhn_digit(_finess_luhn_body(body)))

        def siren(self) -> str:
            while True:
                siren = self._luhn_number(self.numerify("%#######"))
                if siren != _LA_POSTE_SIREN:  # keep generated SIRETs on the plain Luhn rule
                    return siren

        def siret(self) -> str:
            return self._luhn_number(self.siren() + self.numerify("####"))

        def mssante_address(self, given: str, family: str, domain: str = "hopital.mssante.fr") -> str:
            """``given.family@domain`` in lowercase ASCII, e.g. jean.martin@hopital.mssante.fr."""
            local = ".".join(part for part in (_mail_part(given), _mail_part(family)) if part)
            if not local:
                raise ValueError(f"no ASCII letters to build an address from {given!r} {family!r}")
            return f"{local}@{domain.strip().lower()}"

    return FrenchHealthProvider


def __getattr__(name: str) -> Any:
    if name == "FrenchHealthProvider":
        return _provider_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def make_faker(seed: int, providers: list[str] | None = None) -> Any:
    """A fr_FR Faker with :class:`FrenchHealthProvider`, seeded on this instance only; with `providers` (Faker's
    module names), only those of Faker's providers (a Faker with all of them loads some 25 modules)."""
    import faker

    fake = faker.Faker("fr_FR", providers=providers)
    fake.add_provider(_provider_class())
    # seed_instance gives this Faker its own Random; Faker.seed would reseed the shared one.
    fake.seed_instance(seed)
    return fake
