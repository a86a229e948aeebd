import re

from common.keys import KEY_HEX_CHARS, sample_key


def test_keys_are_stable_unique_and_shard_safe():
    assert sample_key("file:///a/b.tar", "000001.jpg") == sample_key("file:///a/b.tar", "000001.jpg")
    keys = {sample_key(f"file:///raw/{i // 100}.tar", f"{i:06d}.jpg") for i in range(10_000)}
    assert len(keys) == 10_000
    assert all(re.fullmatch(rf"[0-9a-f]{{{KEY_HEX_CHARS}}}", k) for k in keys)
    # The separator keeps (source, member) pairs that concatenate alike apart.
    assert sample_key("ab", "c") != sample_key("a", "bc")
    assert sample_key("file:///x.jpg") == sample_key("file:///x.jpg", None) != sample_key("file:///y.jpg")
