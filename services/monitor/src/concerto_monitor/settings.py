"""The monitor's own settings: each saga step's deadline can be set from the environment as
SAGA_DEADLINE_<STEP> (seconds), e.g. SAGA_DEADLINE_RESERVATION=15, so a test stack or a demo
can make them short."""

from __future__ import annotations

import os
from collections.abc import Mapping

from concerto_monitor.domain.definition import ORDER_SAGA, SagaDefinition

PREFIX = "SAGA_DEADLINE_"


def saga_definition(environ: Mapping[str, str] = os.environ) -> SagaDefinition:
    overrides = {}
    for name, value in environ.items():
        if name.startswith(PREFIX):
            try:
                overrides[name.removeprefix(PREFIX).lower()] = int(value)
            except ValueError:
                raise ValueError(f"{name} must be a whole number of seconds, not {value!r}") from None
    return ORDER_SAGA.with_deadlines(overrides)


# The order saga with this process's deadlines.
SAGA = saga_definition()
