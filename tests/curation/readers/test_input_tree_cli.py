"""The hostile input tree through the real CLI: `humans1b curate score` on a tree with symlinks out of it, dangling
links, link loops, FIFOs, a socket, a device, folder loops and a link farm gives each entry its row and reason,
reads every real photo exactly once, never the outside one, and its funnel adds up."""

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq

from curation.readers import READER_REASONS
from tests.curation.readers.conftest import SECRET_SIZE

REPO = Path(__file__).resolve().parents[3]


def test_curate_score_gives_every_entry_of_a_hostile_tree_one_row(hostile_tree, tmp_path, job_env):
    tree, out = hostile_tree, tmp_path / "out"
    command = [
        str(Path(sys.executable).with_name("humans1b")),
        "curate",
        "score",
        "--config",
        str(REPO / "configs/curation/demo.yaml"),
        f"input=[{tree.root}]",
        f"output={out}",
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=600, env=job_env, cwd=REPO)
    assert run.returncode == 0, run.stderr[-3000:]

    columns = ["key", "source", "member", "width", "height", "reject_reason"]
    parts = sorted((out / "candidates").glob("*.parquet"))
    rows = [row for part in parts for row in pq.read_table(part, columns=columns).to_pylist()]
    assert len(rows) == len({r["key"] for r in rows}) == len(tree.photos) + len(tree.refused)

    def where(row: dict) -> tuple[str, str | None]:
        return os.path.relpath(row["source"], tree.root), row["member"]

    refused = {where(r)[0]: r["reject_reason"] for r in rows if r["reject_reason"] in READER_REASONS}
    assert refused == {path: str(reason) for path, reason in tree.refused.items()}
    read = {where(r): (r["width"], r["height"], r["reject_reason"]) for r in rows if where(r)[0] not in refused}
    assert read == {at: (photo.width, photo.height, None) for at, photo in tree.photos.items()}  # each once, kept
    assert SECRET_SIZE not in {(r["width"], r["height"]) for r in rows}  # the outside photo was never decoded

    stats = json.loads((out / "stats.json").read_text())
    reasons = dict(Counter(str(reason) for reason in tree.refused.values()))
    assert stats["rows_in"] == len(rows)
    assert stats["kept"] == len(tree.photos)
    assert stats["rejected"] == stats["stages"]["read"]["rejected"] == reasons
    assert stats["rows_in"] == stats["kept"] + sum(stats["rejected"].values())
    for counts in stats["stages"].values():
        assert counts["in"] == counts["kept"] + sum(counts["rejected"].values())
