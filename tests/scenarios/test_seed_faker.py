"""The seeder's Faker holds only the providers it draws from (scenarios/seed.py, FAKER_PROVIDERS: a start-up
cost, issue 21 point 5): the same names, addresses and numbers as a Faker with all of fr_FR's providers."""

from __future__ import annotations

import datetime
import re
from pathlib import Path

import pytest

from mockbench.scenarios import seed
from mockbench.world.identity import make_faker

DRAWS = {
    "first_name": (), "last_name": (), "first_name_male": (), "first_name_female": (), "city": (),
    "street_address": (), "postcode": (), "finess": (), "rpps": (), "nir": ("F", datetime.date(1984, 2, 29)),
    "mssante_address": ("Élise", "Le Gœff", "chu-test.mssante.fr"),
}


def test_every_draw_of_the_seeder_is_compared() -> None:
    used = set(re.findall(r"self\.faker\.(\w+)", Path(seed.__file__).read_text(encoding="utf-8")))
    assert used and used <= set(DRAWS), f"compare these draws too: {sorted(used - set(DRAWS))}"


@pytest.mark.parametrize("seed_value", [0, 101, 20240501, 2**32 - 1])
def test_the_seeders_faker_draws_what_a_full_faker_draws(seed_value: int) -> None:
    full = make_faker(seed_value)
    lean = make_faker(seed_value, providers=seed.FAKER_PROVIDERS)
    assert len(lean.get_providers()) < len(full.get_providers())
    for n in range(600):   # interleaved, as a seed draws them
        name = list(DRAWS)[n % len(DRAWS)]
        assert getattr(lean, name)(*DRAWS[name]) == getattr(full, name)(*DRAWS[name]), (n, name)
