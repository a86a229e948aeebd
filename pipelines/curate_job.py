"""Ray job entry point for curation (all phases, or the one named first):

    ray job submit --working-dir . -- \
        python -m pipelines.curate_job --config configs/curation/demo.yaml input=[...] output=...
    ray job submit --working-dir . -- python -m pipelines.curate_job select --config ... output=...

Inside a submitted job RAY_ADDRESS is set, so the run joins that cluster instead of starting one.
"""

import sys

from pipelines.cli import main

if __name__ == "__main__":
    sys.exit(main(["curate", *sys.argv[1:]]))
