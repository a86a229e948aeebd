"""Ray job entry point for the download phase (URL lists -> img2dataset shards):

    ray job submit --working-dir . -- \
        python -m pipelines.download_job --config configs/curation/download.yaml input=[urls.parquet] output=...

Inside a submitted job RAY_ADDRESS is set, so the run joins that cluster instead of starting one.
"""

import sys

from pipelines.cli import main

if __name__ == "__main__":
    sys.exit(main(["curate", "download", *sys.argv[1:]]))
