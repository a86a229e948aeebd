"""Stage 1: decode + validate with the common decoder; size, format and damage become named reasons."""

from typing import ClassVar

import pyarrow as pa

from common.image_decode import DecodeConfig
from common.reasons import RejectReason
from curation.stages.base import Stage, StageResources, StageResult
from curation.stages.pixels import IMAGE, decode_row


class DecodeStage(Stage):
    name = "decode"
    fields: ClassVar[list[pa.Field]] = [pa.field("width", pa.int32()), pa.field("height", pa.int32())]
    reasons: ClassVar[tuple[str, ...]] = (
        RejectReason.EMPTY_FILE,
        RejectReason.NOT_AN_IMAGE,
        RejectReason.TRUNCATED,
        RejectReason.DECODE_ERROR,
        RejectReason.TOO_LARGE,
        RejectReason.TOO_SMALL,
        RejectReason.BAD_ASPECT_RATIO,
    )

    def __init__(self, config: DecodeConfig, resources: StageResources | None = None) -> None:
        super().__init__(resources)
        self.config = config

    def process(self, batch: pa.Table) -> StageResult:
        widths, heights, reasons = [], [], []
        for key, data in zip(batch["key"].to_pylist(), batch[IMAGE].to_pylist(), strict=True):
            decoded = decode_row(key, data or b"", self.config)  # kept for the stages after it in the same group
            widths.append(decoded.width)
            heights.append(decoded.height)
            reasons.append(decoded.reason)
        return StageResult(columns={"width": widths, "height": heights}, reject=reasons)
