"""Per-stage funnel counts from candidate rows: every row is kept or rejected by exactly one stage."""

from collections import Counter
from collections.abc import Sequence

import pyarrow as pa

from curation.stages.base import REJECT_REASON, WOULD_REJECT

READ_STAGE = "read"  # reasons the reader gives before any stage runs


def reason_owner(stages: Sequence[tuple[str, Sequence[str]]], reader_reasons: Sequence[str]) -> dict[str, str]:
    """Which stage gives which reason; `stage_error:<name>` belongs to <name>."""
    owner = {reason: READ_STAGE for reason in reader_reasons}
    for name, reasons in stages:
        owner[f"stage_error:{name}"] = name
        for reason in reasons:
            if owner.setdefault(str(reason), name) != name:
                raise ValueError(f"reason {reason!r} is given by both {owner[str(reason)]} and {name}")
    return owner


def funnel_counts(table: pa.Table, stage_names: Sequence[str], owner: dict[str, str]) -> dict[str, dict]:
    """{stage: {in, kept, rejected: {reason: n}, would_reject: {reason: n}}} in pipeline order, `read` first."""
    rejected: dict[str, Counter] = {name: Counter() for name in [READ_STAGE, *stage_names]}
    for reason, n in Counter(table[REJECT_REASON].to_pylist()).items():
        if reason is None:
            continue
        if reason not in owner:
            raise ValueError(f"reject reason {reason!r} belongs to no stage of this pipeline")
        rejected[owner[reason]][reason] += n
    would: dict[str, Counter] = {name: Counter() for name in rejected}
    if WOULD_REJECT in table.column_names:
        for reasons in table[WOULD_REJECT].to_pylist():
            for reason in reasons or ():
                would[owner.get(reason, READ_STAGE)][reason] += 1
    counts, alive = {}, table.num_rows
    for name, reasons in rejected.items():
        out = alive - sum(reasons.values())
        counts[name] = {
            "in": alive,
            "kept": out,
            "rejected": dict(sorted(reasons.items())),
            "would_reject": dict(sorted(would[name].items())),
        }
        alive = out
    return counts


def add_counts(total: dict[str, dict], part: dict[str, dict]) -> dict[str, dict]:
    """Sum two funnels stage by stage (shards of one run, or runs of one job)."""
    out = {}
    for name in dict.fromkeys([*total, *part]):
        a, b = total.get(name, {}), part.get(name, {})
        out[name] = {
            "in": a.get("in", 0) + b.get("in", 0),
            "kept": a.get("kept", 0) + b.get("kept", 0),
            "rejected": dict(sorted((Counter(a.get("rejected", {})) + Counter(b.get("rejected", {}))).items())),
            "would_reject": dict(
                sorted((Counter(a.get("would_reject", {})) + Counter(b.get("would_reject", {}))).items())
            ),
        }
    return out


def check_invariant(counts: dict[str, dict]) -> None:
    """rows in = rows kept + sum of rejections, at every stage, and each stage takes what the previous kept."""
    previous_kept = None
    for name, c in counts.items():
        if c["in"] != c["kept"] + sum(c["rejected"].values()):
            raise AssertionError(f"funnel broken at {name}: {c}")
        if previous_kept is not None and c["in"] != previous_kept:
            raise AssertionError(f"stage {name} got {c['in']} rows, the stage before kept {previous_kept}")
        previous_kept = c["kept"]
