"""Slow transform sizes: prime factors, fast neighbours, and the scenario note."""

from __future__ import annotations

import pytest

from tests.factory import minimal
from tme_abm.core.fft_sizes import largest_prime_factor, nearest_fast_sides, transform_length
from tme_abm.scenario.load import validate_data
from tme_abm.scenario.schema import scenario_notes


def _primes_by_trial(n: int) -> list[int]:
    return [p for p in range(2, n + 1) if n % p == 0 and all(p % q for q in range(2, p))]


@pytest.mark.parametrize("n", [1, 2, 12, 97, 142, 200, 449, 1417, 1440, 2 * 3 * 5 * 7 * 11 * 13])
def test_largest_prime_factor_matches_trial_division(n):
    expected = max(_primes_by_trial(n), default=1)
    assert largest_prime_factor(n) == expected


def test_transform_lengths_and_fast_neighbours():
    assert transform_length(200, False) == 200
    assert transform_length(200, True) == 402  # DST-I through a real FFT of 2 (n + 1)
    assert nearest_fast_sides(449, False) == (432, 450)
    assert nearest_fast_sides(200, True) == (199, 215)  # 400 = 2^4 5^2, 432 = 2^4 3^3


def _notes(shape, **field):
    data = minimal(shape=shape)
    data["fields"]["signal"].update(field)
    return [msg for key, msg in scenario_notes(validate_data(data, "t")) if key == "domain.shape"]


def test_note_names_the_slow_side_and_fast_alternatives():
    notes = _notes((449, 200))
    assert len(notes) == 1
    assert "449 sites along y" in notes[0] and "432 or 450" in notes[0]
    assert _notes((200, 200)) == []


def test_dirichlet_fields_are_judged_by_their_own_length():
    notes = _notes((200, 200), boundary="dirichlet")
    assert len(notes) == 2 and all("length 402" in n and "199 or 215" in n for n in notes)
    assert _notes((199, 199), boundary="dirichlet") == []


def test_no_note_for_the_lod_solver():
    data = minimal(shape=(449, 449))
    data["domain"]["field_solver"] = "lod"
    assert scenario_notes(validate_data(data, "t")) == []
