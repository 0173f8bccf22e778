"""Fuzz suite: random bytes and structure-aware mutations of valid files of every kind (trainer_state,
training_args, jsonl logs, tfevents, safetensors headers, adapter_config, vLLM/compose YAML, registry,
manifest, eval tables) through doctor's scan — discovery, every reader and every probe entry point.

Properties (tests/fuzzkit.py): no traceback (no exception, no DOC002), no hang, every unreadable input a
DOC001 naming the file, nothing outside the target read or written.

CI runs a bounded number of examples per kind (profile `ci`, ~30 s in all). The long run:
`DOCTOR_FUZZ=long python -m pytest tests/test_fuzz_readers.py -q` (`make fuzz`); DOCTOR_FUZZ_LOG=FILE
appends one line per input tried (kind and the rules it produced) for the record.
"""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import HealthCheck, given, settings

from tests.fuzzkit import KINDS, check_properties, inputs

PROFILES = {
    "ci": settings(
        max_examples=12,
        deadline=None,
        derandomize=True,  # the CI run tries the same inputs every time: a failure there is reproducible
        database=None,
        suppress_health_check=list(HealthCheck),
    ),
    "long": settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck)),
}
FUZZ = PROFILES[os.environ.get("DOCTOR_FUZZ", "ci")]
LOG = os.environ.get("DOCTOR_FUZZ_LOG")


def _record(rows: list) -> None:
    if LOG and rows:
        with open(LOG, "a", encoding="utf-8") as fh:
            for kind, rules in rows:
                fh.write(json.dumps({"kind": kind, "rules": rules}) + "\n")


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_fuzzed_input_never_crashes_hangs_or_escapes_the_target(kind):
    rows: list = []

    @FUZZ
    @given(data=inputs(KINDS[kind]))
    def run(data: bytes) -> None:
        check_properties(KINDS[kind], data, rows)

    try:
        run()
    finally:
        _record(rows)
