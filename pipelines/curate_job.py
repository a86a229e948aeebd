"""Ray job entry point for the score phase:

    ray job submit --working-dir . -- \
        python -m pipelines.curate_score --config configs/curation/demo.yaml input=[...] output=...

Inside a submitted job RAY_ADDRESS is set, so the run joins that cluster instead of starting one.
"""

import sys

from pipelines.cli import main

if __name__ == "__main__":
    sys.exit(main(["curate", "score", *sys.argv[1:]]))
