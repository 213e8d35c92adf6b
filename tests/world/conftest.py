"""Fixtures for the world's tests: a world on a fresh SQLite file, a fake clock, and a small cast.

The cast: structures `chu` and `clinic` (both authorized on alice's DMP at structure level) and `lab`
(not authorized); professionals dr-a (author, chu), dr-b (colleague, chu), dr-c (clinic), dr-d (lab);
patients alice (active DMP) and bob (active DMP, no authorization).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from mockbench.world import errors, identity
from mockbench.world.clock import Clock
from mockbench.world.model import Actor, Document, Patient, Professional, Structure
from mockbench.world.store import Store
from mockbench.world.world import World

T0 = 1_750_000_000.0  # 2025-06-15T15:06:40Z: the fake clock's "real" time


def make_nir(body13: str) -> str:
    return body13 + f"{identity.nir_key(body13):02d}"


def make_luhn(body: str) -> str:
    return body + str(identity.luhn_digit(body))


def bad_check_digit(value: str) -> str:
    return value[:-1] + str((int(value[-1]) + 1) % 10)


FINESS = {"chu": make_luhn("75000001"), "clinic": make_luhn("69000002"), "lab": make_luhn("13000003")}
RPPS = {name: make_luhn(f"100000000{n}") for n, name in enumerate(("dr-a", "dr-b", "dr-c", "dr-d"), start=1)}
PRO_STRUCTURE = {"dr-a": "chu", "dr-b": "chu", "dr-c": "clinic", "dr-d": "lab"}
INS = {"alice": make_nir("2840575123456"), "bob": make_nir("1790213055001")}
CONTENT = b"<ClinicalDocument xmlns='urn:hl7-org:v3'>compte rendu</ClinicalDocument>"
META = {"type_code": "11488-4", "class_code": "10", "title": "Compte rendu", "creation_time": "2026-11-20T10:00:00Z"}


def pro(name: str, mode: str = "normal", authentication: str = "INDIRECTE_RENFORCEE") -> Actor:
    return Actor(kind="professional", id=name, structure=PRO_STRUCTURE[name], mode=mode,
                 authentication=authentication)


@dataclass
class Cast:
    """The world plus the people in it, and one-transaction helpers."""

    world: World
    author: Actor
    colleague: Actor
    outsider: Actor       # dr-c: authorized (structure clinic) but not the author's structure
    stranger: Actor       # dr-d: no authorization at all
    patient: Actor
    representative: Actor
    system: Actor

    @staticmethod
    def pro(name: str, mode: str = "normal", authentication: str = "INDIRECTE_RENFORCEE") -> Actor:
        return pro(name, mode, authentication)

    def tx(self) -> AbstractContextManager:
        return self.world.transaction()

    def submit(self, actor: Actor | None = None, patient: str = "alice", content: bytes = CONTENT,
               **meta: object) -> Document:
        with self.world.transaction() as tx:
            return self.world.dmp.submit(tx, actor or self.author, patient, {**META, **meta}, content)

    def find(self, actor: Actor, patient: str = "alice", **kwargs: object) -> list[str]:
        """unique ids found, without writing a consultation trace."""
        kwargs.setdefault("trace", False)
        with self.world.transaction() as tx:
            return [d.unique_id for d in self.world.dmp.find(tx, actor, patient, **kwargs)]

    def doc(self, key: str) -> Document:
        with self.world.transaction() as tx:
            return self.world.dmp.current(tx, key)

    def history(self, unique_id: str, patient: str = "alice") -> list[Document]:
        with self.world.transaction() as tx:
            return [d for d in self.world.dmp.documents(tx, patient, history=True) if d.unique_id == unique_id]

    def actions(self, patient: str = "alice") -> list[str]:
        with self.world.transaction() as tx:
            return [t.action for t in self.world.dmp.traces(tx, patient)]

    def patient_record(self, key: str = "alice") -> Patient:
        with self.world.transaction() as tx:
            return self.world.directory.patient(tx, key)

    def update_patient(self, key: str = "alice", **changes: object) -> Patient:
        with self.world.transaction() as tx:
            p = replace(self.world.directory.patient(tx, key), **changes)
            self.world.directory.save_patient(tx, p)
            return p

    def authorize(self, status: str = "VALIDE", *, structure: str | None = None, professional: str | None = None,
                  patient: str = "alice", until: str | None = None, actor: Actor | None = None) -> None:
        with self.world.transaction() as tx:
            self.world.dmp.set_authorization(tx, actor or self.system, patient, status=status,
                                             structure=structure, professional=professional, until=until)


def build_cast(world: World) -> Cast:
    with world.transaction() as tx:
        d = world.directory
        for sid, finess in FINESS.items():
            d.add_structure(tx, Structure(id=sid, finess=finess, name=sid.upper()))
        for pid, rpps in RPPS.items():
            d.add_professional(tx, Professional(id=pid, idnps="8" + rpps, rpps=rpps, family_name=pid.upper(),
                                                given_name="Doc", structure=PRO_STRUCTURE[pid]))
        d.add_patient(tx, Patient(id="alice", ins=INS["alice"], family_name="MARTIN", given_name="Alice",
                                  birth_date="1984-05-12", sex="F"))
        d.add_patient(tx, Patient(id="bob", ins=INS["bob"], family_name="DURAND", given_name="Bob",
                                  birth_date="1979-02-03", sex="M"))
        system = Actor.system()
        for sid in ("chu", "clinic"):
            world.dmp.set_authorization(tx, system, "alice", status="VALIDE", structure=sid)
    return Cast(world=world, author=pro("dr-a"), colleague=pro("dr-b"), outsider=pro("dr-c"),
                stranger=pro("dr-d"), patient=Actor(kind="patient", id="alice"),
                representative=Actor(kind="legal_representative", id="alice"), system=Actor.system())


@pytest.fixture
def ids() -> SimpleNamespace:
    """The cast's identifiers and the helpers that build valid (or broken) ones."""
    return SimpleNamespace(finess=dict(FINESS), rpps=dict(RPPS), ins=dict(INS), content=CONTENT, meta=dict(META),
                           t0=T0, make_nir=make_nir, make_luhn=make_luhn, bad_check_digit=bad_check_digit,
                           pro=pro)


@pytest.fixture
def now() -> float:
    return T0


@pytest.fixture
def clock(now: float) -> Clock:
    return Clock(real=lambda: now)


@pytest.fixture
def make_world(tmp_path: Path, clock: Clock) -> Iterator[Callable[..., World]]:
    """Builds worlds on files under tmp_path (default w.db) and closes their stores at the end."""
    stores: list[Store] = []

    def _make(name: str = "w.db", world_clock: Clock | None = None, **kwargs: object) -> World:
        store = Store(tmp_path / name)
        stores.append(store)
        return World(store, world_clock or clock, **kwargs)

    yield _make
    for store in stores:
        store.close()


@pytest.fixture
def world(make_world: Callable[..., World]) -> World:
    return make_world()


@pytest.fixture
def cast(world: World) -> Cast:
    return build_cast(world)


@pytest.fixture
def new_cast(tmp_path_factory: pytest.TempPathFactory, now: float) -> Iterator[Callable[[], Cast]]:
    """Builds a fresh world and cast on a new SQLite file at each call (for Hypothesis, one per example)."""
    stores: list[Store] = []

    def _new() -> Cast:
        store = Store(tmp_path_factory.mktemp("world") / "w.db")
        stores.append(store)
        return build_cast(World(store, Clock(real=lambda: now)))

    yield _new
    for store in stores:
        store.close()


@pytest.fixture
def refused() -> Callable[[str], AbstractContextManager]:
    """`with refused("DOCUMENT_DELETED"): ...` expects a WorldError with exactly that stable code."""

    @contextmanager
    def _refused(code: str) -> Iterator[pytest.ExceptionInfo]:
        with pytest.raises(errors.WorldError) as info:
            yield info
        assert info.value.code == code, f"expected {code}, got {info.value.code}: {info.value.message}"

    return _refused
