"""The chat grammar: what users may type, and what they are told when they get it wrong."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from bot.chat import grammar
from bot.chat.grammar import Command, GrammarError, parse
from bot.contract import Operation, flag
from bot.contract.registry import Registry, operations
from bot.contract.words import NODE_NAME_PATTERN, Keyword
from bot.domain.ids import JOB_ID_PATTERN
from handlers.cordon import NodeOptions
from handlers.help import help_text

VERBS = operations()


def node_of(command: Command) -> str | None:
    return getattr(command.options, "node", None)


def job_id_of(command: Command) -> str | None:
    return getattr(command.options, "job_id", None)


@pytest.mark.parametrize(
    ("text", "verb", "node", "job_id", "normalised"),
    [
        ("help", "help", None, None, "help"),
        ("status", "status", None, None, "status"),
        ("cordon node01", "cordon", "node01", None, "cordon node01"),
        ("uncordon node01", "uncordon", "node01", None, "uncordon node01"),
        ("jobs", "jobs", None, None, "jobs"),
        ("job j-1a2b3c4d", "job", None, "j-1a2b3c4d", "job j-1a2b3c4d"),
        ("cancel j-00ff00ff", "cancel", None, "j-00ff00ff", "cancel j-00ff00ff"),
        # the prefixes Slack and people add
        ("<@U0BOT> cordon node01", "cordon", "node01", None, "cordon node01"),
        ("<@U0BOT|kubemaint> status", "status", None, None, "status"),
        ("/kubemaint uncordon node01", "uncordon", "node01", None, "uncordon node01"),
        ("<@U0BOT> /kubemaint jobs", "jobs", None, None, "jobs"),
        # a mention is never part of a command, wherever it is; a leading one may have `:` or `,`
        ("cordon node01 <@U0BOT>", "cordon", "node01", None, "cordon node01"),
        ("cordon <@W0BOT|kubemaint> node01", "cordon", "node01", None, "cordon node01"),
        ("<@U0BOT>: cordon node01", "cordon", "node01", None, "cordon node01"),
        ("<@U0BOT>, status", "status", None, None, "status"),
        ("<@U0BOT> <@U0BOT> status", "status", None, None, "status"),
        ("<@U0ALICE>, <@U0BOT>: status <@U0BOB>", "status", None, None, "status"),
        # whitespace and case
        ("   CORDON \t  node01  \n", "cordon", "node01", None, "cordon node01"),
        ("Status", "status", None, None, "status"),
        # "status" and "status NODE" share their first word: the number of values typed decides
        ("status node01", "status-node", "node01", None, "status node01"),
        ("STATUS  node01", "status-node", "node01", None, "status node01"),
        ("job J-1A2B3C4D", "job", None, "j-1a2b3c4d", "job j-1a2b3c4d"),
        # node-name edge cases that RFC 1123 allows
        ("cordon a", "cordon", "a", None, "cordon a"),
        ("cordon 1", "cordon", "1", None, "cordon 1"),
        ("cordon ip-10-0-1-2", "cordon", "ip-10-0-1-2", None, "cordon ip-10-0-1-2"),
        ("cordon " + "a" * 63, "cordon", "a" * 63, None, "cordon " + "a" * 63),
        # nothing but a mention is a request for help
        ("", "help", None, None, "help"),
        ("<@U0BOT>", "help", None, None, "help"),
        ("<@U0BOT>:", "help", None, None, "help"),
        ("<@U0BOT> <@U0OTHER|bob>", "help", None, None, "help"),
        ("   ", "help", None, None, "help"),
    ],
)
def test_accepted_commands(text: str, verb: str, node: str | None, job_id: str | None, normalised: str) -> None:
    command = parse(text)
    assert (command.verb, node_of(command), job_id_of(command), command.text) == (verb, node, job_id, normalised)
    assert dict(command.flags) == {}


@pytest.mark.parametrize(
    ("text", "reason", "usage"),
    [
        ("cordon Node01!", '"Node01!" is not a valid node name: use lowercase letters', "cordon NODE"),
        ("cordon Node01", '"Node01" is not a valid node name: node names are lowercase (did you mean "node01"?)',
         "cordon NODE"),
        ("cordon -node01", '"-node01" is not a valid node name', "cordon NODE"),
        ("cordon node01-", '"node01-" is not a valid node name', "cordon NODE"),
        ("cordon node_01", '"node_01" is not a valid node name', "cordon NODE"),
        ("cordon node01.example.com", '"node01.example.com" is not a valid node name', "cordon NODE"),
        ("cordon " + "a" * 64, "node names are at most 63 characters", "cordon NODE"),
        ("cordon", "`cordon` needs a NODE", "cordon NODE"),
        ("uncordon", "`uncordon` needs a NODE", "uncordon NODE"),
        ("cordon node01 node02", '`cordon` does not take "node02"', "cordon NODE"),
        ("status now please", "type `status` or `status NODE`", "status [--all] | status NODE"),
        ("status Node01", '"Node01" is not a valid node name', "status NODE"),
        ("cordon node01 --force", '`cordon` does not know "--force" (it takes no flags)', "cordon NODE"),
        ("job 1234", '"1234" is not a valid job id: job ids look like j-1a2b3c4d', "job JOB_ID"),
        ("cancel j-1234", '"j-1234" is not a valid job id', "cancel JOB_ID"),
        ("cancel j-1a2b3c4g", '"j-1a2b3c4g" is not a valid job id', "cancel JOB_ID"),
        ("job", "`job` needs a JOB_ID", "job JOB_ID"),
        ("cordn node01", 'unknown command "cordn"; did you mean `cordon`?', grammar.overall_usage()),
        ("stauts", 'unknown command "stauts"; did you mean `status`?', grammar.overall_usage()),
        ("restart node01", 'unknown command "restart"', grammar.overall_usage()),
        ("dran node01", 'unknown command "dran"; did you mean `drain`?', grammar.overall_usage()),
        # only a whole word is a mention: one glued into a value is not quietly dropped
        ("cordon node01<@U0BOT>", '"node01&lt;@U0BOT&gt;" is not a valid node name', "cordon NODE"),
        ("<@U0BOT>status", 'unknown command "&lt;@U0BOT&gt;status"', grammar.overall_usage()),
    ],
)
def test_rejected_commands(text: str, reason: str, usage: str) -> None:
    with pytest.raises(GrammarError) as caught:
        parse(text)
    assert reason in caught.value.reason
    assert caught.value.usage == usage
    assert str(caught.value) == f"{caught.value.reason}\nUsage: {usage}"


DRAIN_USAGE = ("drain NODE [--delete-emptydir-data] [--dry-run] [--force] [--grace-period SECONDS] "
               "[--pod-selector SELECTOR] [--timeout DURATION]")


@pytest.mark.parametrize(
    ("text", "options", "normalised"),
    [
        ("drain node01", {}, "drain node01"),
        ("drain node01 --force --delete-emptydir-data", {"force": True, "delete-emptydir-data": True},
         "drain node01 --delete-emptydir-data --force"),
        # flags in any order, before or after NODE, `--flag value` or `--flag=value`, any case
        ("drain --DRY-RUN node01 --grace-period=30", {"dry-run": True, "grace-period": 30},
         "drain node01 --dry-run --grace-period 30"),
        ("drain node01 --grace-period 0", {"grace-period": 0}, "drain node01 --grace-period 0"),
        ("drain node01 --grace-period 007", {"grace-period": 7}, "drain node01 --grace-period 7"),
        ("drain node01 --grace-period 3600", {"grace-period": 3600}, "drain node01 --grace-period 3600"),
        # durations are stored in seconds and shown in their shortest form; the default is implied
        ("drain node01 --timeout 30s", {"timeout": 30}, "drain node01 --timeout 30s"),
        ("drain node01 --timeout=90s", {"timeout": 90}, "drain node01 --timeout 1m30s"),
        ("drain node01 --timeout 1H", {"timeout": 3600}, "drain node01 --timeout 1h"),
        ("drain node01 --timeout 24h", {"timeout": 86400}, "drain node01 --timeout 24h"),
        ("drain node01 --timeout 10m", {}, "drain node01"),
        ("drain node01 --timeout 600s", {}, "drain node01"),
        # label selectors: normalised (terms sorted, == as =, set values sorted), spaces allowed
        ("drain node01 --pod-selector app=web", {"pod-selector": "app=web"}, "drain node01 --pod-selector app=web"),
        # smart punctuation (macOS, iOS) turns a typed "--" into an em or en dash
        ("drain node01 \u2014force \u2013delete-emptydir-data", {"force": True, "delete-emptydir-data": True},
         "drain node01 --delete-emptydir-data --force"),
        ("drain \u2014dry-run node01 \u2014grace-period=30", {"dry-run": True, "grace-period": 30},
         "drain node01 --dry-run --grace-period 30"),
        ("drain node01 \u2013pod-selector app=web \u2013timeout 1h", {"pod-selector": "app=web", "timeout": 3600},
         "drain node01 --pod-selector app=web --timeout 1h"),
        ("drain node01 --pod-selector=tier==Front_1.x,app!=db",
         {"pod-selector": "app!=db,tier=Front_1.x"}, "drain node01 --pod-selector app!=db,tier=Front_1.x"),
        ("drain node01 --pod-selector app in (web, api) --force", {"pod-selector": "app in (api,web)", "force": True},
         "drain node01 --force --pod-selector app in (api,web)"),
        ("drain --pod-selector tier notin (cache),!canary,example.com/team node01",
         {"pod-selector": "!canary,example.com/team,tier notin (cache)"},
         "drain node01 --pod-selector !canary,example.com/team,tier notin (cache)"),
        ("drain node01 --pod-selector app = web", {"pod-selector": "app=web"}, "drain node01 --pod-selector app=web"),
        ("drain node01 --pod-selector app=", {"pod-selector": "app="}, "drain node01 --pod-selector app="),
    ],
)
def test_drain_flags(text: str, options: dict, normalised: str) -> None:
    command = parse(text)
    assert (command.verb, node_of(command)) == ("drain", "node01")
    assert dict(command.flags) == options
    assert command.text == normalised
    assert parse(command.text) == command


def test_drain_timeout_defaults_to_ten_minutes() -> None:
    assert parse("drain node01").options.timeout == 600
    assert parse("drain node01 --timeout 1m").options.timeout == 60
    assert parse("drain node01").options.grace_period is None
    assert parse("drain node01").options.force is False


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("drain", "`drain` needs a NODE"),
        ("drain node01 --now --later", '`drain` does not know "--now", "--later" (it takes --delete-emptydir-data, '
                                       "--dry-run, --force, --grace-period, --pod-selector, --timeout)"),
        ("drain node01 --force=yes", "`--force` takes no value"),
        ("drain node01 --ignore-daemonsets=true", "`--ignore-daemonsets` takes no value"),
        # a flag typed with one dash names the flag, not "not a valid node name"
        ("drain node01 -force", "flags start with two dashes: --force"),
        ("drain -Dry-Run node01", "flags start with two dashes: --dry-run"),
        ("drain node01 -grace-period=30", "flags start with two dashes: --grace-period"),
        ("drain node01 -ignore-daemonsets", "flags start with two dashes: --ignore-daemonsets"),
        ("drain node01 -f", '`drain` does not take "-f"'),
        # every flag given twice is refused alike, whatever its kind, case or dash
        ("drain node01 --force --force", "`--force` is given twice"),
        ("drain node01 --dry-run --DRY-RUN", "`--dry-run` is given twice"),
        ("drain node01 \u2014force --force", "`--force` is given twice"),
        ("drain node01 --ignore-daemonsets --ignore-daemonsets", "`--ignore-daemonsets` is given twice"),
        ("drain node01 --grace-period", "`--grace-period` needs a value: --grace-period SECONDS"),
        ("drain node01 --grace-period --force", "`--grace-period` needs a value"),
        ("drain node01 --grace-period=", "`--grace-period` needs a value"),
        ("drain node01 --grace-period -1", '--grace-period: "-1" is not a number of seconds'),
        ("drain node01 --grace-period 1.5", '"1.5" is not a number of seconds'),
        ("drain node01 --grace-period ٣", "is not a number of seconds"),  # non-ASCII digits
        ("drain node01 --grace-period 3601", "a grace period of 3601s is too long: at most 3600 seconds"),
        ("drain node01 --grace-period 5 --grace-period 5", "`--grace-period` is given twice"),
        ("drain node01 --timeout 10", '--timeout: "10" is not a duration: use a number with s, m or h'),
        ("drain node01 --timeout 0s", "a timeout must be longer than 0s"),
        ("drain node01 --timeout -5m", '"-5m" is not a duration'),
        ("drain node01 --timeout 1d", '"1d" is not a duration'),
        ("drain node01 --timeout 24h1s", "is too long: at most 24h"),
        ("drain node01 --pod-selector", "`--pod-selector` needs a value: --pod-selector SELECTOR"),
        ("drain node01 --pod-selector app=web;reboot", '"app=web;reboot" is not a valid pod selector'),
        ("drain node01 --pod-selector $(id)", "is not a valid pod selector"),
        ("drain node01 --pod-selector app=`id`", "is not a valid pod selector"),
        ("drain node01 --pod-selector app>1", "is not a valid pod selector"),
        ("drain node01 --pod-selector app in ()", "`in` needs at least one value"),
        ("drain node01 --pod-selector app in (a", "unbalanced parentheses"),
        ("drain node01 --pod-selector app=web,", "an empty term"),
        ("drain node01 --pod-selector -app=web", '"-app" is not a valid label key'),
        ("drain node01 --pod-selector app=-web", '"-web" is not a valid label value'),
        ("drain node01 --pod-selector Example.com/app=web", 'the key prefix "Example.com" is not a DNS subdomain'),
        ("drain node01 --pod-selector app=" + "v" * 64, "is not a valid label value"),
        ("drain node01 --pod-selector app=a=b", '"app=a=b" is not a selector term'),
        ("drain node01 node02", '`drain` does not take "node02"'),
        ("drain Node01 --force", '"Node01" is not a valid node name'),
    ],
)
def test_drain_rejections(text: str, reason: str) -> None:
    with pytest.raises(GrammarError) as caught:
        parse(text)
    assert reason in caught.value.reason
    assert caught.value.usage == DRAIN_USAGE


DAEMONSETS_NOTE = "`--ignore-daemonsets` is always on: drain never evicts DaemonSet pods"


def test_ignore_daemonsets_is_accepted_with_a_note_and_changes_nothing() -> None:
    # kubectl needs --ignore-daemonsets to drain a node with DaemonSet pods; kubemaint never evicts them.
    command = parse("drain node01 --ignore-daemonsets --force")
    assert command.notes == (DAEMONSETS_NOTE,)
    assert command.text == "drain node01 --force"
    assert dict(command.flags) == {"force": True}
    assert command.options == parse("drain node01 --force").options
    assert "ignore_daemonsets" not in dataclasses.asdict(command.options)  # nor in a job's steps
    # the notes are about how the words were read, not part of the command
    again = parse(command.text)
    assert again == command and hash(again) == hash(command) and again.notes == ()
    assert parse("drain --IGNORE-DAEMONSETS node01").notes == (DAEMONSETS_NOTE,)
    assert parse("drain node01 \u2014ignore-daemonsets").notes == (DAEMONSETS_NOTE,)
    assert parse("drain node01").notes == () and parse("status").notes == ()
    assert "ignore-daemonsets" not in VERBS["drain"].usage


def test_drain_usage_and_help() -> None:
    assert VERBS["drain"].usage == DRAIN_USAGE
    assert f"`{DRAIN_USAGE}` — cordon a node and evict its pods" in help_text()


def test_unknown_verb_lists_every_verb() -> None:
    with pytest.raises(GrammarError) as caught:
        parse("frobnicate")
    assert "did you mean" not in caught.value.reason
    for spec in VERBS.values():
        assert spec.usage in caught.value.usage
    assert "cordon NODE" in str(caught.value)


@pytest.mark.parametrize(
    "text",
    [
        "cordon node01;reboot", "cordon node01 ; reboot", "cordon $(id)", "cordon `id`", "cordon node01|sh",
        "cordon node01&&x", "cordon node01>x", "cordon 'node01'", 'cordon "node01"', "cordon node01\\",
        "cordon node01\x00", "cordon ../etc", "cordon *", "cordon ~root", "job j-1a2b3c4d;x", "cordon nöde01",
    ],
)
def test_shell_metacharacters_never_get_through(text: str) -> None:
    with pytest.raises(GrammarError):
        parse(text)


@pytest.mark.parametrize(
    ("text", "reason", "usage"),
    [
        ("cordon 'node01'", "quotes are not needed: type cordon node01", "cordon NODE"),
        ('cordon "node01"', "quotes are not needed: type cordon node01", "cordon NODE"),
        ("drain node01 --pod-selector 'run=blue'", "quotes are not needed: type drain node01 --pod-selector run=blue",
         DRAIN_USAGE),
        ('drain node01 --pod-selector="run=blue" --force',
         "quotes are not needed: type drain node01 --force --pod-selector run=blue", DRAIN_USAGE),
        ("drain node01 --pod-selector 'app in (web, api)'",
         "quotes are not needed: type drain node01 --pod-selector app in (api,web)", DRAIN_USAGE),
        ("drain node01 --pod-selector app in ('web','api')",
         "quotes are not needed: type drain node01 --pod-selector app in (api,web)", DRAIN_USAGE),
        # the curly quotes smart punctuation makes
        ("cordon \u2018node01\u2019", "quotes are not needed: type cordon node01", "cordon NODE"),
        ("<@U0BOT> \u201ccordon node01\u201d", "quotes are not needed: type cordon node01", "cordon NODE"),
        # wrong without the quotes too: both are said
        ("cordon 'Node01'", 'quotes are not needed, and "Node01" is not a valid node name: node names are lowercase',
         "cordon NODE"),
        ("cordon '$(id)'", 'quotes are not needed, and "$(id)" is not a valid node name', "cordon NODE"),
        ("cordon ''", "quotes are not needed, and `cordon` needs a NODE", "cordon NODE"),
        # an apostrophe inside a word is not a quote
        ("cordon node'01", '"node\'01" is not a valid node name', "cordon NODE"),
        ("what's up", 'unknown command "what\'s"', grammar.overall_usage()),
    ],
)
def test_quotes_are_refused_with_the_command_to_type(text: str, reason: str, usage: str) -> None:
    with pytest.raises(GrammarError) as caught:
        parse(text)
    assert caught.value.reason.startswith(reason)
    assert caught.value.usage == usage


def test_quoted_input_cannot_ping_the_channel() -> None:
    with pytest.raises(GrammarError) as caught:
        parse("<!channel> hello")
    assert "<!channel>" not in str(caught.value)
    assert "&lt;!channel&gt;" in caught.value.reason
    with pytest.raises(GrammarError) as caught:
        parse("cordon <!here>")
    assert "<!here>" not in str(caught.value)
    with pytest.raises(GrammarError) as caught:
        parse("cordon '<!here>'")
    assert "<!here>" not in str(caught.value)


def test_long_values_are_truncated_in_messages() -> None:
    with pytest.raises(GrammarError) as caught:
        parse("cordon " + "X" * 200)
    assert len(caught.value.reason) < 150


def test_overlong_text_is_refused_outright() -> None:
    with pytest.raises(GrammarError, match="too long"):
        parse("status " + " " * 1000)


def test_commands_are_hashable_and_immutable() -> None:
    command = parse("cordon node01")
    assert command == Command(VERBS["cordon"], NodeOptions(node="node01"))
    assert {command: 1}[parse("  cordon   node01")] == 1
    with pytest.raises(AttributeError):
        command.node = "node02"  # type: ignore[misc]
    with pytest.raises(TypeError):
        command.options["force"] = True  # type: ignore[index]


def test_help_lists_every_verb_with_usage_and_description() -> None:
    text = help_text()
    for spec in VERBS.values():
        assert f"`{spec.usage}` — {spec.description}" in text


@dataclass(frozen=True)
class _DrainLike:
    node: str
    force: bool = flag()
    ignore_daemonsets: bool = flag()


def test_a_new_verb_is_one_table_entry() -> None:
    drain = Operation(name="drain", words="drain NODE", options=_DrainLike,
                      description="cordon a node and evict its pods", answer=lambda asking, options: "")
    table = Registry([*(op for op in VERBS.values() if op.name != "drain"), drain], VERBS.resources.values())
    command = parse("drain node01 --ignore-daemonsets --FORCE", table)
    assert command.verb == "drain"
    assert node_of(command) == "node01"
    assert dict(command.flags) == {"force": True, "ignore-daemonsets": True}
    assert command.text == "drain node01 --force --ignore-daemonsets"
    assert parse(command.text, table) == command
    assert "`drain NODE [--force] [--ignore-daemonsets]` — cordon a node and evict its pods" in help_text(table)
    with pytest.raises(GrammarError, match=r'does not know "--now" \(it takes --force, --ignore-daemonsets\)'):
        parse("drain node01 --now", table)


def test_every_verb_in_the_table_parses_with_valid_arguments() -> None:
    samples = {"NODE": "node01", "JOB_ID": "j-0123abcd", "BACKUP_ID": "b-0123abcd", "VERSION": "v1.20.0"}
    for spec in VERBS.values():
        text = " ".join(t.word if isinstance(t, Keyword) else samples[t.kind.placeholder] for t in spec.grammar.phrase)
        assert parse(text).text == text


# --- fuzzing -------------------------------------------------------------------------------------

_words = st.one_of(
    st.sampled_from([*VERBS, "CORDON", "Job", "<@U0BOT>", "<@U0BOT>:", "/kubemaint", "--force", "-", ";", "|", "$(id)",
                     "\u2014force", "-force", "--ignore-daemonsets", "'node01'", "'", '"', "\u2019",
                     "--delete-emptydir-data", "--dry-run", "--grace-period", "--timeout", "--pod-selector",
                     "--timeout=1h", "--grace-period=0", "in", "notin", "(a,b)", "!=", "=", ",", "app=web", "!x"]),
    st.from_regex(NODE_NAME_PATTERN, fullmatch=True),
    st.from_regex(r"[jJ]-[0-9a-fA-F]{6,9}", fullmatch=True),
    st.text(min_size=1, max_size=12),
)
_selector_words = st.lists(
    st.one_of(st.from_regex(r"[a-zA-Z0-9._/-]{1,8}", fullmatch=True),
              st.sampled_from(["=", "==", "!=", "!", ",", "in", "notin", "(", ")", "(a,b)", "app", "x=1"])),
    min_size=1, max_size=6,
).map(" ".join)
_lines = st.one_of(
    st.text(max_size=80),
    st.lists(_words, max_size=5).map(" ".join),
    st.tuples(st.sampled_from(["cordon", "uncordon"]), st.text(max_size=70)).map(" ".join),
    st.tuples(st.just("drain node01 --pod-selector"), _selector_words).map(" ".join),
    st.tuples(st.sampled_from(["drain node01 --timeout", "drain node01 --grace-period"]),
              st.text(max_size=10)).map(" ".join),
)


@given(_lines)
@example("cordon node01")
@example("cordon \u00a0node01")
@example("job j-ABCDEF01")
@example("drain node01 --pod-selector app in (a,b) --timeout 90s --force")
@example("drain node01 --pod-selector in in (in)")
def test_parse_raises_only_grammar_errors_and_round_trips(text: str) -> None:
    try:
        command = parse(text)
    except GrammarError as error:
        assert error.reason and error.usage
        return
    assert command.verb in VERBS
    if node_of(command) is not None:
        assert NODE_NAME_PATTERN.fullmatch(node_of(command))
        assert len(node_of(command)) <= 63
    if job_id_of(command) is not None:
        assert JOB_ID_PATTERN.fullmatch(job_id_of(command))
    assert parse(command.text) == command
    text = command.text
    selector = command.flags.get("pod-selector")
    if selector is not None:
        # Only a selector may bring capitals and operators, and only from its safe alphabet.
        assert re.fullmatch(r"[A-Za-z0-9._/=!(), -]+", str(selector))
        text = text.replace(f" --pod-selector {selector}", "")
    assert re.fullmatch(r"[a-z0-9 -]+", text)


@given(st.from_regex(NODE_NAME_PATTERN, fullmatch=True))
def test_every_rfc1123_label_is_accepted(name: str) -> None:
    assert node_of(parse(f"cordon {name}")) == name
