"""Arrow schemas shared by the curation phases and the shard io (DESIGN.md "Contracts")."""

import pyarrow as pa

PERSON_TYPE = pa.struct(
    [
        pa.field("box", pa.list_(pa.float32(), 4)),  # x0, y0, x1, y1 in pixels of the oriented image
        pa.field("conf", pa.float32()),
    ]
)

HEAD_POSE_TYPE = pa.struct(
    [
        pa.field("yaw_class", pa.string()),  # frontal | three_quarter | profile | back
        pa.field("face_keypoints_visible", pa.int8()),  # of nose, eyes, ears: 0..5
    ]
)


def candidate_schema(clip_dim: int) -> pa.Schema:
    """Schema of a score-phase candidate row; the CLIP width depends on the model (768 for ViT-L/14)."""
    if clip_dim <= 0:
        raise ValueError(f"clip_dim must be positive, got {clip_dim}")
    return pa.schema(
        [
            pa.field("key", pa.string(), nullable=False),  # stable: hash of source URI + member name
            pa.field("source", pa.string(), nullable=False),  # URI of the file or tar the bytes live in
            pa.field("member", pa.string()),  # tar member / parquet row the bytes live at; null for plain files
            pa.field("member_offset", pa.int64()),  # byte offset of the member's data in an uncompressed tar, else null
            pa.field("member_bytes", pa.int64()),  # the member's size: write reads [offset, offset + bytes) back
            pa.field("width", pa.int32()),
            pa.field("height", pa.int32()),
            pa.field("phash", pa.uint64()),
            pa.field("persons", pa.list_(PERSON_TYPE)),
            pa.field("max_person_short_side", pa.float32()),
            pa.field("head_pose", HEAD_POSE_TYPE),
            pa.field("clip", pa.list_(pa.float16(), clip_dim)),  # L2-normalised
            pa.field("aesthetic", pa.float32()),
            pa.field("nsfw", pa.float32()),  # P(nsfw) from the LAION CLIP NSFW detector
            pa.field("realism", pa.float32()),
            pa.field("text_overlay", pa.float32()),
            pa.field("would_reject", pa.list_(pa.string())),  # audit-mode decisions that did not drop the row
            pa.field("reject_reason", pa.string()),  # null = kept; the first stage that rejects wins
        ]
    )


# Columns every shard index has; the writer fills them itself.
SHARD_BASE_FIELDS = [
    pa.field("key", pa.string(), nullable=False),
    pa.field("tar_offset", pa.int64(), nullable=False),  # byte offset of the sample's first tar header
    pa.field("tar_bytes", pa.int64(), nullable=False),  # bytes the sample spans in the tar, headers included
]

# Index of a curated Humans-1B shard; later phases append their columns (scores, cluster ids) after these.
SHARD_INDEX_SCHEMA = pa.schema(
    [
        *SHARD_BASE_FIELDS,
        pa.field("source", pa.string()),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("sha256", pa.string()),  # of the image bytes as stored
    ]
)
