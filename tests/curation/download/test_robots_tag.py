import pytest

from curation.download.robots_tag import directives_for, opted_out, parse_x_robots_tag

DISALLOWED = frozenset({"noai", "noimageai", "noindex", "noimageindex"})

# header values (one per X-Robots-Tag header) -> directives per agent (None: every agent)
PARSES = {
    "semicolons (the issue)": (["noai; noimageai"], {None: {"noai", "noimageai"}}),
    "two scopes in one header (the issue)": (
        ["otherbot: noindex, humans1b: noai"],
        {"otherbot": {"noindex"}, "humans1b": {"noai"}},
    ),
    "a scope runs to the next agent": (
        ["noarchive, googlebot: nofollow, noimageindex, otherbot: noindex"],
        {None: {"noarchive"}, "googlebot": {"nofollow", "noimageindex"}, "otherbot": {"noindex"}},
    ),
    "several headers combine, each starts unscoped": (
        ["googlebot: nofollow", "otherbot: noindex, nofollow", "noai"],
        {"googlebot": {"nofollow"}, "otherbot": {"noindex", "nofollow"}, None: {"noai"}},
    ),
    "value directives are no agents": (
        ["max-snippet: 20, max-image-preview: large, max-video-preview: -1, noai"],
        {None: {"max-snippet", "max-image-preview", "max-video-preview", "noai"}},
    ),
    "unavailable_after with a date full of colons": (
        ["unavailable_after: 25 Jun 2010 15:00:00 PST"],
        {None: {"unavailable_after"}},
    ),
    "a date holding a comma does not open a scope": (
        ["unavailable_after: Fri, 25 Jun 2010 15:00:00 PST, noai"],
        {None: {"unavailable_after", "noai"}},
    ),
    "a value directive inside a scope": (
        ["humans1b: max-image-preview: none, noimageai"],
        {"humans1b": {"max-image-preview", "noimageai"}},
    ),
    "case-insensitive, spaces around": (["  HUMANS1B :  NoAI ,NoIndex "], {"humans1b": {"noai", "noindex"}}),
    "empty values and empty items": (["", " , ;", "noai,,;"], {None: {"noai"}}),
    "an agent with no directives": (["humans1b:"], {"humans1b": set()}),
    "no headers": ([], {}),
}


@pytest.mark.parametrize("case", list(PARSES))
def test_parse_x_robots_tag(case: str) -> None:
    values, expected = PARSES[case]
    assert parse_x_robots_tag(values) == expected


# header values -> opted out for "humans1b" with the default disallowed directives
OPT_OUTS = [
    (["noai; noimageai"], True),
    (["otherbot: noindex, humans1b: noai"], True),
    (["otherbot: noindex, noai"], False),  # both for otherbot
    (["otherbot: noai", "humans1b: noindex"], True),
    (["otherbot: noai", "nofollow"], False),
    (["humans1b: nofollow, otherbot: noai"], False),
    (["none"], True),  # none = noindex, nofollow
    (["max-image-preview: none"], False),  # a value, not the directive
    (["unavailable_after: 25 Jun 2010 15:00:00 PST"], False),
    (["NoImageIndex"], True),
    (["all"], False),
    ([""], False),
]


@pytest.mark.parametrize(("values", "expected"), OPT_OUTS)
def test_opted_out(values: list[str], expected: bool) -> None:
    assert opted_out(values, "humans1b", DISALLOWED) is expected
    assert opted_out(values, "HumAns1B", DISALLOWED) is expected  # the token matches case-insensitively


def test_directives_for_our_agent_join_the_unscoped_ones() -> None:
    values = ["nosnippet, humans1b: noai, otherbot: noindex", "humans1b: none"]
    assert directives_for(values, "humans1b") == {"nosnippet", "noai", "none", "noindex", "nofollow"}
    assert directives_for(values, "otherbot") == {"nosnippet", "noindex"}
    assert directives_for(values, "thirdbot") == {"nosnippet"}


def test_an_empty_disallowed_set_opts_nothing_out() -> None:
    assert not opted_out(["noai, noindex"], "humans1b", frozenset())
