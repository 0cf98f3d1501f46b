"""Where apt reads its sources and keeps its lists, as `-o NAME=VALUE` may move them:

- `Dir::Etc::SourceList=FILE` (default /etc/apt/sources.list), `Dir::Etc::SourceParts=DIR` (default
  /etc/apt/sources.list.d; `-` reads no parts directory), `Dir::State::Lists=DIR` (default
  /var/lib/apt/lists; the lab's machine keeps its own lists in lists.json, another DIR gets
  the lab's file in it).

So a read-only probe of another minor's repository touches nothing of the machine's:
`apt-get update -o Dir::Etc::SourceList=/tmp/probe.list -o Dir::Etc::SourceParts=- -o
Dir::State::Lists=/tmp/probe-lists` then `apt-cache madison kubeadm` with the same options.
The host's /etc/apt/sources.list (the machine sees it through its overlay) names the OS mirrors:
its lines are the lab's OS archive, and the OS archive is fetched only when it is the source list.
"""

from __future__ import annotations

from dataclasses import dataclass

from lab.machines.programs import repos, state
from lab.machines.programs.system import System

DEFAULT_SOURCE_LIST = "/etc/apt/sources.list"
DEFAULT_SOURCE_PARTS = "/etc/apt/sources.list.d"
DEFAULT_LISTS = "/var/lib/apt/lists"
LISTS_NAME = "kubemaint-lab-lists.json"  # in another Dir::State::Lists: what the lab's apt fetched there


@dataclass(frozen=True)
class AptDirs:
    source_list: str = DEFAULT_SOURCE_LIST
    source_parts: str | None = DEFAULT_SOURCE_PARTS  # None: `-`, no parts directory
    lists: str = DEFAULT_LISTS

    @classmethod
    def from_options(cls, values: list[str]) -> AptDirs:
        """From the NAME=VALUE of every -o; other names are accepted and ignored."""
        found = {}
        for value in values:
            name, has_value, setting = value.partition("=")
            if not has_value:
                raise ValueError(f"E: Missing the value for option {value} (use -o NAME=VALUE)")
            found[name.strip().lower()] = setting.strip()
        parts = found.get("dir::etc::sourceparts", DEFAULT_SOURCE_PARTS)
        return cls(found.get("dir::etc::sourcelist", DEFAULT_SOURCE_LIST) or DEFAULT_SOURCE_LIST,
                   None if parts in ("-", "") else parts,
                   (found.get("dir::state::lists", DEFAULT_LISTS) or DEFAULT_LISTS).rstrip("/") or "/")

    @property
    def own_lists(self) -> bool:
        return self.lists.rstrip("/") == DEFAULT_LISTS

    @property
    def lists_file(self) -> str:
        return state.LISTS if self.own_lists else f"{self.lists}/{LISTS_NAME}"

    @property
    def lock_file(self) -> str:
        return state.LISTS_LOCK if self.own_lists else f"{self.lists}/lock"

    @property
    def with_os_archive(self) -> bool:
        return self.source_list == DEFAULT_SOURCE_LIST


def source_lines(system: System, dirs: AptDirs) -> list[str]:
    """The `deb` lines that name Kubernetes repositories, or that the lab knows nothing of (from
    the parts directory or another source list: those fail `apt-get update` as unreachable)."""
    texts = []
    if dirs.source_list != DEFAULT_SOURCE_LIST:
        texts.append(system.read_text(dirs.source_list, "") or "")
    else:  # the host's OS mirrors: the lab's OS archive stands for them; Kubernetes lines count
        texts.append("\n".join(line for line in (system.read_text(dirs.source_list, "") or "").splitlines()
                               if repos.is_kubernetes_line(line)))
    if dirs.source_parts is not None:
        directory = system.path(dirs.source_parts)
        names = sorted(p.name for p in directory.glob("*.list")) if directory.is_dir() else []
        texts += [system.read_text(f"{dirs.source_parts}/{name}", "") or "" for name in names]
    lines = []
    for text in texts:
        for raw in text.splitlines():
            line = raw.split("#", 1)[0].strip()
            if line.startswith("deb "):
                lines.append(line)
    return lines


def missing_lists_dir(system: System, dirs: AptDirs) -> str | None:
    """apt creates DIR/partial only under /var/lib/apt; elsewhere it must exist (apt's message)."""
    if dirs.own_lists or system.path(f"{dirs.lists}/partial").is_dir():
        return None
    return f"E: List directory {dirs.lists}/partial is missing. - Acquire (2: No such file or directory)"
