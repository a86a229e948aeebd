"""Stages that run back to back in one Ray worker on one batch, sharing decoded pixels (`curation.stages.pixels`).

Today's groups: the model-free decode and phash (one task: the decode stage's validating decode serves the hash), and
the pixel models detect, head pose and CLIP (one actor holding all three: one decode serves them). The CLIP heads
work on the embedding and keep their own pools. An image is decoded twice instead of five times; every stage still
records its own rejections, time and node, so the funnel is exactly what separate stages give.
"""

from collections.abc import Sequence

import pyarrow as pa

from curation.stages.base import Stage
from curation.stages.pixels import shared_decodes
from curation.stages.resources import AUTO, StageResources

PIXEL_GROUPS = (("decode", "phash"), ("detect", "head_pose", "clip"))


class StageGroup:
    """Duck-types a Stage for the Ray adapter: `name`, `resources`, `needs_model`, `reasons`, called on a batch."""

    def __init__(self, stages: Sequence[Stage]) -> None:
        self.stages = list(stages)
        self.name = "+".join(s.name for s in self.stages)
        self.needs_model = any(s.needs_model for s in self.stages)
        self.reasons = tuple(r for s in self.stages for r in s.reasons)
        self.resources = merged_resources([s.resources for s in self.stages])

    def __call__(self, batch: pa.Table) -> pa.Table:
        with shared_decodes():
            for stage in self.stages:  # each at its own batch size: a model's memory was sized for it
                size = stage.resources.batch_size
                pieces = [stage(batch.slice(i, size)) for i in range(0, batch.num_rows, size)]
                batch = pa.concat_tables(pieces) if pieces else stage(batch)
        return batch


def merged_resources(parts: Sequence[StageResources]) -> StageResources:
    """What one worker running these stages one after the other needs: the most CPUs any of them asks for, their GPU
    shares added up (each model's share of the work, now done by one actor; at most a whole GPU), the largest batch,
    and the largest pool (`auto` if any is)."""
    maxima = [p.max_workers for p in parts]
    return StageResources(
        num_cpus=max(p.num_cpus for p in parts),
        num_gpus=min(1.0, sum(p.num_gpus for p in parts)),
        batch_size=max(p.batch_size for p in parts),
        min_workers=max(p.min_workers for p in parts),
        max_workers=AUTO if AUTO in maxima else max(int(m) for m in maxima),
    )


def group_stages(stages: Sequence[Stage], groups: Sequence[Sequence[str]] = PIXEL_GROUPS) -> list[Stage | StageGroup]:
    """`stages` in order, each run of consecutive stages named together in `groups` made one StageGroup (a group
    whose stages are not all present and adjacent stays apart)."""
    out: list[Stage | StageGroup] = []
    i = 0
    while i < len(stages):
        for names in groups:
            window = [s.name for s in stages[i : i + len(names)]]
            if window == list(names):
                out.append(StageGroup(stages[i : i + len(names)]))
                i += len(names)
                break
        else:
            out.append(stages[i])
            i += 1
    return out
