"""`humans1b sample-data OUT`: build the sample corpus (real photos from installed packages, no download)."""

import argparse
from pathlib import Path

from curation.sample_corpus import SampleCorpusConfig, build_sample_corpus

NAME = "sample-data"
HELP = "build the sample corpus: real photos, near-duplicates, odd and malformed files, as a folder and as tars"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", type=Path, metavar="OUT", help="output directory (images/, tars/, corpus.parquet)")
    parser.add_argument("--seed", type=int, default=SampleCorpusConfig.seed, help="same seed, same bytes")
    parser.add_argument(
        "--samples-per-shard", type=int, default=SampleCorpusConfig.samples_per_shard, help="samples per tar"
    )


def run(args: argparse.Namespace) -> int:
    corpus = build_sample_corpus(args.out, SampleCorpusConfig(seed=args.seed, samples_per_shard=args.samples_per_shard))
    print(f"sample corpus: {corpus}")
    return 0
