"""What each shard sample carries: the `json` member of a sample and the extra columns of the shard index."""

from typing import Any

import pyarrow as pa

from common.schemas import SHARD_INDEX_SCHEMA

# Selection columns copied into every sample's json, as they are.
JSON_COLUMNS = (
    "width",
    "height",
    "persons",
    "max_person_short_side",
    "head_pose",
    "aesthetic",
    "realism",
    "text_overlay",
    "would_reject",
    "cluster_ids",
)


def index_schema(levels: int) -> pa.Schema:
    """The shard parquet: the common shard index, then the scores and cluster ids people filter shards by."""
    return pa.schema(
        [
            *SHARD_INDEX_SCHEMA,
            pa.field("aesthetic", pa.float32()),
            pa.field("realism", pa.float32()),
            pa.field("text_overlay", pa.float32()),
            pa.field("max_person_short_side", pa.float32()),
            pa.field("yaw_class", pa.string()),
            pa.field("cluster_ids", pa.list_(pa.int32(), levels)),
        ]
    )


def _rounded(value: Any) -> Any:
    """float32 columns as the shortest decimal that round-trips through float32, not 17 noisy digits."""
    if isinstance(value, float):
        return float(f"{value:.7g}")
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


def sample_json(row: dict[str, Any]) -> dict[str, Any]:
    """The metadata stored next to an image; boxes are in the stored image's pixel coordinates."""
    meta = {name: _rounded(row[name]) for name in JSON_COLUMNS if name in row}
    meta["key"] = row["key"]
    return meta


def index_row(row: dict[str, Any]) -> dict[str, Any]:
    pose = row.get("head_pose") or {}
    return {
        "source": row["source"],
        "width": row["width"],
        "height": row["height"],
        "aesthetic": row.get("aesthetic"),
        "realism": row.get("realism"),
        "text_overlay": row.get("text_overlay"),
        "max_person_short_side": row.get("max_person_short_side"),
        "yaw_class": pose.get("yaw_class"),
        "cluster_ids": row.get("cluster_ids"),
    }
