"""Chat text -> the words of a command, without what chat and habit put around it.

Slack and people add things that are never part of a command: user mentions (Slack puts the
bot's first, people put it last or write "<@U0BOT>: status"), the `/kubemaint` of the slash
command pasted into a message, and the em or en dash that macOS and iOS make of a typed `--`.
These are undone here. Shell quotes are only found here (`unquoted`): the grammar refuses them,
so what the bot acts on is always exactly what was typed, and names the command to type instead.
"""

from __future__ import annotations

import re

# A user mention, as Slack delivers it: <@U0BOT> or <@U0BOT|kubemaint> (W: Enterprise Grid users).
_MENTION = re.compile(r"<@[UW][A-Z0-9]+(?:\|[^>]*)?>")
# Addressing the bot first reads naturally with punctuation: "<@U0BOT>: drain node01", "<@U0BOT>, status".
_LEADING_MENTION = re.compile(_MENTION.pattern + r"[:,]?")
_SLASH_COMMAND = "/kubemaint"
# Smart punctuation turns a typed "--" into an em dash (macOS) or an en dash (iOS): "—force".
_AUTOCORRECTED_DASH = re.compile("^[\u2014\u2013]")
_QUOTES = "'\"\u2018\u2019\u201c\u201d"  # straight and the curly ones smart punctuation makes
# A quote that opens or closes a value: at either end of a word, after `=`, `(` or `,`, or before
# `,` or `)`. An apostrophe inside a word ("what's") is not one: that text stays as typed.
_WRAPPING_QUOTES = re.compile(rf"^[{_QUOTES}]+|(?<=[=(,])[{_QUOTES}]+|[{_QUOTES}]+(?=[,)]|$)")


def command_words(text: str) -> list[str]:
    """The words of the command in `text`: mentions, a `/kubemaint` prefix and smart dashes undone."""
    words = text.split()
    leading = 0
    while leading < len(words) and _LEADING_MENTION.fullmatch(words[leading]):
        leading += 1
    words = [word for word in words[leading:] if not _MENTION.fullmatch(word)]
    if words and words[0].lower() == _SLASH_COMMAND:
        words = words[1:]
    return [_undash(word) for word in words]


def unquoted(words: list[str]) -> list[str] | None:
    """`words` without the shell quotes around values (`'run=blue'`), or None if nothing is quoted."""
    bare = [_WRAPPING_QUOTES.sub("", word) for word in words]
    if bare == words:
        return None
    return [_undash(word) for word in bare if word]


def _undash(word: str) -> str:
    return _AUTOCORRECTED_DASH.sub("--", word)
