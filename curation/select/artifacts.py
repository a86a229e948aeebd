"""Fingerprints that chain the select steps: a step's fingerprint covers the candidate set, the seed and the settings
of it and every step before it, so a changed input or setting redoes that step and everything after it."""

import hashlib
import json
from typing import Any


def fingerprint(*parts: Any) -> str:
    """A stable digest of JSON-able parts (configs as dicts, earlier fingerprints, counts)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
