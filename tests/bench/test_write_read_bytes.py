"""bench/write_read_bytes.py at a tiny size: both paths write the same shards; the offset path reads about what it
writes, the streaming one far more."""

import os
import re
import subprocess
import sys

from tests.bench.scripts import BENCH


def test_the_offset_path_reads_about_what_it_writes():
    args = ["--tars", "4", "--per-tar", "20", "--fraction", "0.2", "--side", "64", "--shard-size", "8"]
    done = subprocess.run(
        [sys.executable, str(BENCH / "write_read_bytes.py"), *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(BENCH.parent)},
    )
    ratios = dict(re.findall(r"^path=(\w+) .* ratio=([\d.]+)", done.stdout, re.MULTILINE))
    assert set(ratios) == {"streaming", "offset"}, done.stdout
    assert float(ratios["offset"]) <= 1.2 < float(ratios["streaming"])
    assert "identical_shards=True" in done.stdout
