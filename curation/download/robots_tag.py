"""X-Robots-Tag as Google's robots meta tag / X-Robots-Tag specification reads it, plus ';' seen in the wild.

Each header value is a list of directives separated by ',' (or ';'). A `useragent:` prefix scopes the directives
after it, up to the next prefix or the end of that header value; directives before any prefix apply to every
crawler. Directives that take a value (`max-snippet: 20`, `unavailable_after: <date>`) also contain a colon; they
are told apart from agent names by their known names. Names and values are case-insensitive, and several
X-Robots-Tag headers combine. `none` means `noindex, nofollow`.
"""

import re
from collections.abc import Iterable

# Directives of the specification that take a value after a colon; nothing else before a colon is a directive.
VALUE_DIRECTIVES = frozenset({"max-snippet", "max-image-preview", "max-video-preview", "unavailable_after"})
SHORTHANDS = {"none": frozenset({"noindex", "nofollow"})}
_SEPARATORS = re.compile(r"[,;]")
# A user-agent token (googlebot, googlebot-news, humans1b). Anything else before a colon (spaces, digits of a
# time) is the tail of a value that itself held a separator, e.g. "unavailable_after: Fri, 25 Jun 2010 15:00:00".
_AGENT = re.compile(r"[a-z][a-z0-9._-]*")


def parse_x_robots_tag(values: Iterable[str]) -> dict[str | None, frozenset[str]]:
    """Directive names per user agent (lower case; None: every agent). Values of value directives are dropped."""
    scopes: dict[str | None, set[str]] = {}
    for value in values:
        agent: str | None = None  # each header value starts unscoped
        for piece in _SEPARATORS.split(value.lower()):
            prefix, colon, rest = (part.strip() for part in piece.partition(":"))
            if colon and prefix not in VALUE_DIRECTIVES and _AGENT.fullmatch(prefix):
                agent = prefix  # "humans1b: noai": a new scope, and its first directive
                scopes.setdefault(agent, set())
                prefix, colon, rest = (part.strip() for part in rest.partition(":"))
            directive = _directive(prefix, bool(colon))
            if directive:
                scopes.setdefault(agent, set()).add(directive)
    return {agent: frozenset(names) for agent, names in scopes.items()}


def _directive(prefix: str, has_value: bool) -> str | None:
    if not prefix:
        return None
    if has_value:  # "max-snippet: 20" names max-snippet; any other "x: y" here is a fragment we cannot place
        return prefix if prefix in VALUE_DIRECTIVES else None
    return prefix if _AGENT.fullmatch(prefix) else None  # "25 jun 2010 15" and other fragments are no directive


def directives_for(values: Iterable[str], user_agent_token: str) -> frozenset[str]:
    """The directives that apply to `user_agent_token`: the unscoped ones and those scoped to it."""
    scopes = parse_x_robots_tag(values)
    names = scopes.get(None, frozenset()) | scopes.get(user_agent_token.lower(), frozenset())
    return names.union(*(SHORTHANDS[n] for n in names if n in SHORTHANDS))


def opted_out(values: Iterable[str], user_agent_token: str, disallowed: frozenset[str]) -> bool:
    """Whether the X-Robots-Tag header values forbid `user_agent_token` what `disallowed` (lower case) names."""
    return not directives_for(values, user_agent_token).isdisjoint(disallowed)
