"""Which Ray node ran each stage on each batch: a stage adds a `node:<stage>` column (one value per batch), the
fragment writer reads the distinct values and drops the columns, the part's marker keeps them, stats.json sums them."""

import pyarrow as pa
import ray

NODE_PREFIX = "node:"
LOCAL = "local"  # a stage called outside Ray (benchmarks, unit tests)


def this_node() -> str:
    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else LOCAL


def with_node(table: pa.Table, stage: str) -> pa.Table:
    column = pa.array([this_node()] * table.num_rows, pa.string())
    name = NODE_PREFIX + stage
    i = table.schema.get_field_index(name)
    return table.set_column(i, name, column) if i >= 0 else table.append_column(name, column)


def batch_nodes(table: pa.Table) -> dict[str, list[str]]:
    """{stage: sorted distinct node ids} of the rows of `table`."""
    return {
        name[len(NODE_PREFIX) :]: sorted(set(table[name].drop_null().to_pylist()))
        for name in table.column_names
        if name.startswith(NODE_PREFIX)
    }
