"""How many models the page keeps alive at once.

Every browser tab of ``tme-abm viz`` holds its own model (a few hundred MB
for the baseline lattice), so a server open to other machines
(``--host 0.0.0.0``) could be made to run out of memory by opening tabs.
:class:`ModelSlots` bounds the number of tabs holding a model: a tab claims a
slot before it builds its model (Reset builds the next model in the same
slot) and gives it back when Solara closes the tab's kernel (the tab was
closed, or it stayed disconnected past the cull timeout).  A tab that finds
every slot taken is told so on the page and builds nothing.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Hashable

from tme_abm.scenario.budget import available_memory_bytes

#: Environment variable through which ``tme-abm viz --max-models N`` sets the bound.
MAX_MODELS_ENV = "TME_ABM_VIZ_MAX_MODELS"
#: Memory budgeted per live model: any tab may pick the biggest offered
#: scenario (measured after two steps: large.toml 470 MB, baseline_3d.toml
#: 435 MB, baseline.toml 4 MB).
MODEL_BYTES = 512 * 1024**2
#: Share of the memory available at start that the default bound may use.
MEMORY_SHARE = 0.5


class TooManyModels(RuntimeError):
    """Every slot is taken; the message says how many and what to do."""


class ModelSlots:
    """A fixed number of slots, each held by one owner (a browser tab).

    Parameters
    ----------
    limit
        Most owners at once (at least 1).
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"the model limit must be at least 1, not {limit}")
        self.limit = int(limit)
        self._owners: set[Hashable] = set()
        self._lock = threading.Lock()

    @property
    def count(self) -> int:
        """Number of slots held."""
        with self._lock:
            return len(self._owners)

    def claim(self, owner: Hashable) -> bool:
        """Take a slot for ``owner``.

        Returns
        -------
        bool
            True if the slot is new, False if ``owner`` already held one.

        Raises
        ------
        TooManyModels
            If every slot is held by other owners.
        """
        with self._lock:
            if owner in self._owners:
                return False
            if len(self._owners) >= self.limit:
                models = "model" if self.limit == 1 else "models"
                raise TooManyModels(
                    f"This server already runs {self.limit} {models}, the most it allows "
                    f"(tme-abm viz --max-models {self.limit}): close another tab of this "
                    "page, then press Try again."
                )
            self._owners.add(owner)
            return True

    def release(self, owner: Hashable) -> None:
        """Give back ``owner``'s slot (nothing happens if it holds none)."""
        with self._lock:
            self._owners.discard(owner)


def default_max_models(available_bytes: int | None = None) -> int:
    """The bound when none is given: half the available memory in
    :data:`MODEL_BYTES` models, at least 1 (4 where memory is unknown)."""
    if available_bytes is None:
        available_bytes = available_memory_bytes()
    if available_bytes is None:
        return 4
    return max(1, math.floor(available_bytes * MEMORY_SHARE / MODEL_BYTES))


def max_models() -> int:
    """The bound for this server: :data:`MAX_MODELS_ENV` if set, else
    :func:`default_max_models`.

    Raises
    ------
    ValueError
        If the variable is set but is not a whole number of at least 1.
    """
    given = os.environ.get(MAX_MODELS_ENV, "").strip()
    if not given:
        return default_max_models()
    if not given.isdigit() or int(given) < 1:
        raise ValueError(f"{MAX_MODELS_ENV} must be a whole number of at least 1, not {given!r}")
    return int(given)


_server_slots: ModelSlots | None = None
_server_lock = threading.Lock()


def server_slots() -> ModelSlots:
    """The slots of this server process (made on first use from :func:`max_models`)."""
    global _server_slots
    with _server_lock:
        if _server_slots is None:
            _server_slots = ModelSlots(max_models())
        return _server_slots
