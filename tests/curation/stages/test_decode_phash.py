import imagehash
import pyarrow as pa
import pytest

from common.image_decode import DecodeConfig, decode_image
from curation.sample_corpus import NEAR_DUPLICATE, ORIGINAL, SampleCorpusConfig, build_sample_corpus
from curation.stages.base import REJECT_REASON
from curation.stages.decode import DecodeStage
from curation.stages.phash import PhashStage


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return build_sample_corpus(tmp_path_factory.mktemp("corpus"), SampleCorpusConfig())


def corpus_batch(corpus) -> pa.Table:
    entries = sorted(corpus.entries, key=lambda e: e.path)
    return pa.table(
        {
            "key": [e.key for e in entries],
            "image": [(corpus.images_dir / e.path).read_bytes() for e in entries],
            REJECT_REASON: pa.array([None] * len(entries), pa.string()),
        }
    )


def test_decode_stage_gives_every_file_its_expected_reason(corpus):
    entries = sorted(corpus.entries, key=lambda e: e.path)
    out = DecodeStage(DecodeConfig())(corpus_batch(corpus))
    assert out[REJECT_REASON].to_pylist() == [e.expected_reason for e in entries]
    for e, w, h in zip(entries, out["width"].to_pylist(), out["height"].to_pylist(), strict=True):
        if e.expected_reason is None:
            assert (w, h) == (e.width, e.height), e.path


def test_phash_matches_imagehash_and_groups_near_duplicates(corpus):
    decoded = DecodeStage(DecodeConfig())(corpus_batch(corpus))
    out = PhashStage(DecodeConfig())(decoded)
    entries = sorted(corpus.entries, key=lambda e: e.path)
    hashes = dict(zip([e.path for e in entries], out["phash"].to_pylist(), strict=True))
    for e in entries:
        if e.expected_reason is None:
            image = decode_image((corpus.images_dir / e.path).read_bytes()).image
            assert hashes[e.path] == int(str(imagehash.phash(image)), 16)
        else:
            assert hashes[e.path] is None  # rejected rows get no hash
    originals = {e.name.rsplit("/", 1)[-1]: e for e in entries if e.kind == ORIGINAL and e.expected_reason is None}
    near = [
        bin(hashes[e.path] ^ hashes[originals[e.origin].path]).count("1")
        for e in entries
        if e.kind == NEAR_DUPLICATE and e.origin in originals
    ]
    paths = [o.path for o in originals.values()]
    cross = [bin(hashes[a] ^ hashes[b]).count("1") for i, a in enumerate(paths) for b in paths[i + 1 :]]
    assert len(near) >= 12 and len(cross) >= 28
    assert max(near) < min(cross)  # near-duplicates sit closer to their original than any two photos do
