"""One pass over the selection (a parquet file or a directory of part files): selected rows per top-level cluster,
seeded thumbnail examples per cluster, and the head-pose classes of the selected rows."""

import logging
from collections import Counter
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from curation.report.cluster_grid import rank_clusters, top_level_ids
from curation.report.config import ReportConfig
from curation.report.head_pose import count_classes
from curation.report.inputs import RunInputs, dataset_batches
from curation.report.row_sample import SmallestPerGroup, priorities

log = logging.getLogger(__name__)

COLUMNS = ["key", "source", "member", "cluster_ids", "head_pose.yaw_class"]


@dataclass
class SelectionScan:
    rows: int = 0
    yaw: Counter = field(default_factory=Counter)  # yaw class (None: no pose) of every selected row
    picks: list[dict] = field(default_factory=list)  # cluster_grid.rank_clusters


def scan_selection(inputs: RunInputs, config: ReportConfig) -> SelectionScan | None:
    if inputs.selection is None:
        return None
    scan, per_cluster = SelectionScan(), Counter()
    examples = SmallestPerGroup(config.thumbs_per_cluster if config.top_clusters else 0)
    for batch in dataset_batches(inputs.selection, COLUMNS):
        scan.rows += batch.num_rows
        count_classes(scan.yaw, pc.struct_field(batch.column("head_pose"), "yaw_class"))
        top = top_level_ids(batch.column("cluster_ids"))
        rows = pa.table({"group": top, "key": batch.column("key")}).append_column("source", batch.column("source"))
        rows = rows.append_column("member", batch.column("member")).filter(pc.is_valid(top))
        for entry in pc.value_counts(rows["group"]).to_pylist():
            per_cluster[entry["values"]] += entry["counts"]
        examples.add(rows.append_column("priority", pa.array(priorities(rows["key"], config.seed))))
    scan.picks = rank_clusters(per_cluster, examples.groups(), config)
    log.info("report: %d selected rows in %d top-level clusters", scan.rows, len(per_cluster))
    return scan
