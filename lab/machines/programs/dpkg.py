"""dpkg -l / -s / --print-architecture / --compare-versions over the machine's packages.json."""

from __future__ import annotations

import fnmatch

from lab.machines.programs import packaging, state
from lab.machines.programs.debversion import compare
from lab.machines.programs.system import System

NEED_ACTION = """dpkg: error: need an action option

Type dpkg --help for help about installing and deinstalling packages [*];
Use 'apt' or 'aptitude' for user-friendly package management;
Type dpkg -Dhelp for a list of dpkg debug flag values;
Type dpkg --force-help for a list of forcing options;
Type dpkg-deb --help for help about manipulating *.deb files;

Options marked [*] produce a lot of output - pipe it through 'less' or 'more' !"""
LIST_HEADER = ("Desired=Unknown/Install/Remove/Purge/Hold\n"
               "| Status=Not/Inst/Conf-files/Unpacked/halF-conf/Half-inst/trig-aWait/Trig-pend\n"
               "|/ Err?=(none)/Reinst-required (Status,Err: uppercase=bad)")
COMPARISONS = {"lt": lambda c: c < 0, "le": lambda c: c <= 0, "eq": lambda c: c == 0, "ne": lambda c: c != 0,
               "ge": lambda c: c >= 0, "gt": lambda c: c > 0, "<<": lambda c: c < 0, "<=": lambda c: c <= 0,
               "=": lambda c: c == 0, ">=": lambda c: c >= 0, ">>": lambda c: c > 0}


def dpkg(system: System, args: list[str]) -> int:
    if not args:
        system.err(NEED_ACTION)
        return 2
    action, rest = args[0], args[1:]
    installed = state.packages(system)["packages"]
    if action in ("-l", "--list"):
        return list_packages(system, installed, rest)
    if action in ("-s", "--status"):
        return status(system, installed, rest)
    if action == "--print-architecture":
        system.out("amd64")
        return 0
    if action == "--compare-versions" and len(rest) == 3 and rest[1] in COMPARISONS:
        return 0 if COMPARISONS[rest[1]](compare(rest[0], rest[2])) else 1
    if action.startswith("-"):
        system.err(f"dpkg: error: unknown option {action}\n\nType dpkg --help for help about installing and "
                   f"deinstalling packages [*];")
        return 2
    system.err(NEED_ACTION)
    return 2


def list_packages(system: System, installed: dict, patterns: list[str]) -> int:
    rows, missing = [], []
    for pattern in patterns or ["*"]:
        found = [n for n in sorted(installed) if fnmatch.fnmatchcase(n, pattern)]
        if not found:
            missing.append(pattern)
        rows += [(("hi" if installed[n].get("held") else "ii"), n, installed[n]["version"],
                  installed[n].get("description") or packaging.description(n)) for n in found if
                 n not in {r[1] for r in rows}]
    if rows:
        name_w = max(14, *(len(r[1]) for r in rows))
        version_w = max(12, *(len(r[2]) for r in rows))
        desc_w = max(len(r[3]) for r in rows)
        system.out(LIST_HEADER)
        system.out(f"||/ {'Name':<{name_w}} {'Version':<{version_w}} {'Architecture':<12} Description")
        system.out(f"+++-{'=' * name_w}-{'=' * version_w}-{'=' * 12}-{'=' * desc_w}")
        for state_mark, name, version, description in rows:
            system.out(f"{state_mark}  {name:<{name_w}} {version:<{version_w}} {'amd64':<12} {description}")
    for pattern in missing:
        system.err(f"dpkg-query: no packages found matching {pattern}")
    return 1 if missing else 0


def status(system: System, installed: dict, names: list[str]) -> int:
    if not names:
        system.err("dpkg-query: error: --status needs at least one package name argument\n\n"
                   "Use --help for help about querying packages.")
        return 2
    code = 0
    for index, name in enumerate(names):
        entry = installed.get(name)
        if entry is None:
            system.err(f"dpkg-query: package '{name}' is not installed and no information is available\n"
                       f"Use dpkg --info (= dpkg-deb --info) to examine archive files.")
            code = 1
            continue
        if index:
            system.out()
        selection = "hold" if entry.get("held") else "install"
        system.out(f"Package: {name}\nStatus: {selection} ok installed\nPriority: optional\n"
                   f"Architecture: amd64\nVersion: {entry['version']}\n"
                   f"Description: {entry.get('description') or packaging.description(name)}")
    return code


_FIELDS = {"Package": lambda name, entry: name, "binary:Package": lambda name, entry: name,
           "Version": lambda name, entry: entry["version"], "Architecture": lambda name, entry: "amd64",
           "Status": lambda name, entry: f"{'hold' if entry.get('held') else 'install'} ok installed",
           "db:Status-Abbrev": lambda name, entry: "hi " if entry.get("held") else "ii "}
_DEFAULT_FORMAT = "${binary:Package}\t${Version}\n"


def dpkg_query(system: System, args: list[str]) -> int:
    """`dpkg-query -W [-f=FORMAT] [PACKAGE...]` (`--show`, `--showformat`); -l and -s as dpkg's."""
    if args and args[0] in ("-l", "--list", "-s", "--status"):
        return dpkg(system, args)
    if not args or args[0] not in ("-W", "--show"):
        system.err("dpkg-query: error: need an action option\n\nUse --help for help about querying packages.")
        return 2
    form, names, rest = _DEFAULT_FORMAT, [], args[1:]
    while rest:
        word, rest = rest[0], rest[1:]
        if word.startswith(("-f=", "--showformat=")):
            form = word.partition("=")[2]
        elif word in ("-f", "--showformat") and rest:
            form, rest = rest[0], rest[1:]
        else:
            names.append(word)
    installed = state.packages(system)["packages"]
    code = 0
    for pattern in names or ["*"]:
        found = [n for n in sorted(installed) if fnmatch.fnmatchcase(n, pattern)]
        if not found:
            system.err(f"dpkg-query: no packages found matching {pattern}")
            code = 1
        for name in found:
            system.out(_formatted(form, name, installed[name]), end="")
    return code


def _formatted(form: str, name: str, entry: dict) -> str:
    text = form.replace("\\n", "\n").replace("\\t", "\t")
    for field, value in _FIELDS.items():
        text = text.replace("${" + field + "}", value(name, entry))
    return text
