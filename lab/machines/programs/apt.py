"""apt-get, apt-cache and apt (list) as Debian's apt 2.x answers, over the machine's JSON state."""

from __future__ import annotations

from lab.machines.programs import packaging, repos, state
from lab.machines.programs.aptconfig import AptDirs, missing_lists_dir, source_lines
from lab.machines.programs.cache import DPKG_STATUS, Cache
from lab.machines.programs.system import LockHeld, System
from lab.machines.programs.transaction import Transaction, install, upgrade

APT_GET_USAGE = """apt 2.0.6 (amd64)
Usage: apt-get [options] command
       apt-get [options] install|remove pkg1 [pkg2 ...]
       apt-get [options] source pkg1 [pkg2 ...]

apt-get is a command line interface for retrieval of packages
and information about them from authenticated sources and
for installation, upgrade and removal of packages together
with their dependencies.

Most used commands:
  update - Retrieve new lists of packages
  upgrade - Perform an upgrade
  install - Install new packages (pkg is libc6 not libc6.deb)
  remove - Remove packages
  dist-upgrade - Distribution upgrade, see apt-get(8)

See apt-get(8) for more information about the available commands.
                                        This APT has Super Cow Powers."""
APT_CACHE_USAGE = """apt 2.0.6 (amd64)
Usage: apt-cache [options] command
       apt-cache [options] show pkg1 [pkg2 ...]

apt-cache queries and displays available information about installed
and installable packages. It works exclusively on the data acquired
into the local cache via the 'update' command of e.g. apt-get.

Most used commands:
  madison - Show available versions of packages
  policy - Show policy settings"""
FLAGS = {"-y": "yes", "--yes": "yes", "--assume-yes": "yes", "-s": "simulate", "--simulate": "simulate",
         "--dry-run": "simulate", "--just-print": "simulate", "--no-act": "simulate",
         "--allow-change-held-packages": "allow_held", "--allow-downgrades": "allow_downgrades",
         "--no-install-recommends": "", "--install-recommends": "", "--fix-missing": "", "-f": "",
         "--fix-broken": "", "--only-upgrade": "", "-m": "", "--ignore-missing": ""}
VALUE_OPTIONS = ("-o", "--option", "-t", "--target-release", "-c", "--config-file")
LOCK_HELD = ("E: Could not get lock {path}. It is held by process {holder}\n"
             "N: Be aware that removing the lock file is not a solution and may break your system.")
SIMULATION_NOTE = """NOTE: This is only a simulation!
      apt-get needs root privileges for real execution.
      Keep also in mind that locking is deactivated,
      so don't depend on the relevance to the real current situation!"""
UPDATE_ERROR = ("Err:{n} {fetch}\n  403  Forbidden [IP: 151.101.2.132 443]",
                "E: Failed to fetch {url}InRelease  403  Forbidden [IP: 151.101.2.132 443]\n"
                "E: The repository '{url} InRelease' is not signed.\n"
                "N: Updating from such a repository can't be done securely, and is therefore disabled by default.\n"
                "N: See apt-secure(8) manpage for repository creation and user configuration details.")


class Usage(Exception):
    """Bad command line: apt's message and exit code."""

    def __init__(self, message: str, code: int = 100) -> None:
        super().__init__(message)
        self.code = code


def parse(args: list[str]) -> tuple[dict, list[str]]:
    options = {"yes": False, "simulate": False, "allow_held": False, "allow_downgrades": False, "quiet": 0,
               "config": []}
    words: list[str] = []
    pending_value = ""
    for arg in args:
        if pending_value:
            if pending_value in ("-o", "--option"):
                options["config"].append(arg)
            pending_value = ""
        elif arg in VALUE_OPTIONS:
            pending_value = arg
        elif arg.startswith("--option="):
            options["config"].append(arg.split("=", 1)[1])
        elif arg.startswith("-o"):
            options["config"].append(arg[2:])
        elif arg.startswith("-t"):
            continue
        elif arg in ("-q", "--quiet"):
            options["quiet"] += 1
        elif arg in ("-qq",) or arg.startswith("--quiet="):
            options["quiet"] = 2
        elif arg in FLAGS:
            if FLAGS[arg]:
                options[FLAGS[arg]] = True
        elif arg.startswith("--"):
            raise Usage(f"E: Command line option {arg} is not understood in combination with the other options")
        elif arg.startswith("-") and len(arg) > 1:
            for letter in arg[1:]:
                flag = f"-{letter}"
                if flag == "-q":
                    options["quiet"] += 1
                elif flag in FLAGS:
                    if FLAGS[flag]:
                        options[FLAGS[flag]] = True
                else:
                    raise Usage(f"E: Command line option '{letter}' [from {arg}] is not understood in "
                                f"combination with the other options.")
        else:
            words.append(arg)
    return options, words


# -- apt-get ------------------------------------------------------------------------------------


def apt_get(system: System, args: list[str]) -> int:
    try:
        options, words = parse(args)
    except Usage as usage:
        system.err(str(usage))
        return usage.code
    if not words:
        system.out(APT_GET_USAGE)
        return 1
    command, targets = words[0], words[1:]
    try:
        options["dirs"] = AptDirs.from_options(options["config"])
    except ValueError as exc:
        system.err(str(exc))
        return 100
    if command == "update":
        return update(system, options)
    if command in ("install", "upgrade", "dist-upgrade", "full-upgrade", "remove", "purge"):
        return change(system, options, command, targets)
    if command in ("check", "clean", "autoclean", "autoremove"):
        return housekeeping(system, options, command)
    system.err(f"E: Invalid operation {command}")
    return 100


def say(system: System, options: dict, text: str) -> None:
    if options["quiet"] < 2:
        system.out(text)


def update(system: System, options: dict) -> int:
    dirs: AptDirs = options["dirs"]
    lock = "/var/lib/apt/lists/lock" if dirs.own_lists else dirs.lock_file
    denied = (f"E: Could not open lock file {lock} - open (13: Permission denied)\n"
              f"E: Unable to lock directory {dirs.lists}/")
    if not system.is_root and dirs.own_lists:
        say(system, options, "Reading package lists...")
        system.err(denied)
        return 100
    missing = missing_lists_dir(system, dirs)
    if missing:
        system.err(missing)
        return 100
    try:
        with system.lock(dirs.lock_file, wait=False):
            return _update(system, options, dirs)
    except PermissionError:
        say(system, options, "Reading package lists...")
        system.err(denied)
        return 100
    except LockHeld as held:
        system.err(LOCK_HELD.format(path=lock, holder=held.holder) + f"\nE: Unable to lock directory {dirs.lists}/")
        return 100


def _update(system: System, options: dict, dirs: AptDirs) -> int:
    archive = system.read_json(state.ARCHIVE, {}) or {}
    previous = system.read_json(dirs.lists_file, {}) or {}
    os_archive = (archive.get("os") or {}) if dirs.with_os_archive else {}
    mirror, codename = os_archive.get("mirror", ""), os_archive.get("codename", "")
    lines: list[str] = []
    fetched = 0
    new_lists: dict = {"kubernetes": {}}
    if dirs.with_os_archive:
        lines.append(f"Hit:1 {mirror} {codename} InRelease")
        updates = os_archive.get("updates") or {}
        if updates != (previous.get("os") or {}).get("updates"):
            lines.append(f"Get:2 {mirror} {codename}-updates InRelease [88.7 kB]")
            fetched += 88
        else:
            lines.append(f"Hit:2 {mirror} {codename}-updates InRelease")
        new_lists["os"] = {"mirror": mirror, "codename": codename, "updates": updates}
    was = [entry.get("repo") for entry in [previous.get("kubernetes") or {}, *(previous.get("kubernetesMore") or [])]]
    fetched_repos: list[dict] = []
    failures: list[str] = []
    for line in source_lines(system, dirs):
        number = len(lines) + 1
        repo = repos.parse_line(line)
        if repo is not None and repos.exists(archive, repo):
            entry = {"repo": {"kind": repo.kind, "minor": repo.minor}, "packages": repos.index(archive, repo)}
            if entry["repo"] in [e["repo"] for e in fetched_repos]:
                continue
            fetched_repos.append(entry)
            if entry["repo"] in was:
                lines.append(f"Hit:{number} {repo.fetch_name()}")
            else:
                lines.append(f"Get:{number} {repo.fetch_name()} [1,189 B]")
                fetched += 12
        elif repo is not None:
            progress, failure = UPDATE_ERROR
            lines.append(progress.format(n=number, fetch=repo.fetch_name()))
            failures.append(failure.format(url=repo.url))
        else:
            url = next((w for w in line.split() if "://" in w), line)
            lines.append(f"Ign:{number} {url} InRelease\nErr:{number} {url} Release\n  Could not resolve host")
            failures.append(f"E: The repository '{url} Release' does not have a Release file.")
    if fetched_repos:
        new_lists["kubernetes"] = fetched_repos[0]
        if fetched_repos[1:]:
            new_lists["kubernetesMore"] = fetched_repos[1:]
    if fetched:
        lines.append(f"Fetched {fetched}.{fetched % 10} kB in 1s ({fetched}.{fetched % 10} kB/s)")
    lines.append("Reading package lists...")
    for line in lines:
        say(system, options, line)
    system.write_json(dirs.lists_file, new_lists)
    if failures:
        system.err("\n".join(failures))
        return 100
    return 0


def _cache(system: System, dirs: AptDirs | None = None) -> Cache:
    lists_file = (dirs or AptDirs()).lists_file
    return Cache(state.packages(system), system.read_json(lists_file, {}) or {})


def change(system: System, options: dict, command: str, targets: list[str]) -> int:
    if options["simulate"]:
        if not system.is_root:
            say(system, options, SIMULATION_NOTE)
        return _change(system, options, command, targets)
    if not system.is_root:
        system.err("E: Could not open lock file /var/lib/dpkg/lock-frontend - open (13: Permission denied)\n"
                   "E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), are you root?")
        return 100
    try:
        with system.lock(state.DPKG_LOCK, wait=False):
            return _change(system, options, command, targets)
    except LockHeld as held:
        system.err(LOCK_HELD.format(path=state.DPKG_LOCK, holder=held.holder) +
                   "\nE: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), "
                   "is another process using it?")
        return 100


def _change(system: System, options: dict, command: str, targets: list[str]) -> int:
    for line in ("Reading package lists...", "Building dependency tree...", "Reading state information..."):
        say(system, options, line)
    cache = _cache(system, options.get("dirs"))
    if command in ("remove", "purge"):
        return _remove(system, options, cache, targets)
    if command == "install":
        plan = install(cache, targets)
    else:
        say(system, options, "Calculating upgrade...")
        plan = upgrade(cache)
    for name, version in plan.up_to_date:
        say(system, options, f"{name} is already the newest version ({version}).")
    if plan.errors:
        system.err("\n".join(f"E: {e}" for e in plan.errors))
        return 100
    _describe(system, options, cache, plan)
    held = plan.held_changed(cache)
    downgrades = plan.of_kind("downgrade")
    if not plan.changes:
        return 0
    if options["yes"] and held and not options["allow_held"]:
        system.err("E: Held packages were changed and -y was used without --allow-change-held-packages.")
        return 100
    if options["yes"] and downgrades and not options["allow_downgrades"]:
        system.err("E: Packages were downgraded and -y was used without --allow-downgrades.")
        return 100
    if options["simulate"]:
        for item in plan.changes:
            old = f" [{item.old}]" if item.old else ""
            say(system, options, f"Inst {item.name}{old} ({item.new.version} {item.new.suite} [amd64])")
        for item in plan.changes:
            say(system, options, f"Conf {item.name} ({item.new.version} {item.new.suite} [amd64])")
        return 0
    needs_consent = bool(held or downgrades or command != "install")
    if needs_consent and not options["yes"]:
        answer = system.ask("Do you want to continue? [Y/n] ")
        if answer is None or answer.lower() not in ("", "y", "yes"):
            system.out("Abort.")
            return 1
    _apply(system, options, plan)
    return 0


def _describe(system: System, options: dict, cache: Cache, plan: Transaction) -> None:
    sections = [("The following packages have been kept back:", sorted(plan.kept_back)),
                ("The following held packages will be changed:", plan.held_changed(cache)),
                ("The following NEW packages will be installed:", plan.of_kind("install")),
                ("The following packages will be upgraded:", plan.of_kind("upgrade")),
                ("The following packages will be DOWNGRADED:", plan.of_kind("downgrade"))]
    for heading, names in sections:
        if names:
            say(system, options, heading)
            for line in packaging.package_list(names):
                say(system, options, line)
    upgraded, new, down = (len(plan.of_kind(k)) for k in ("upgrade", "install", "downgrade"))
    downgraded = f"{down} downgraded, " if down else ""
    say(system, options, f"{upgraded} upgraded, {new} newly installed, {downgraded}0 to remove and "
                         f"{plan.not_upgraded} not upgraded.")
    if plan.changes and not options["simulate"]:
        total = sum(packaging.size_kb(c.name, c.new.version) for c in plan.changes)
        say(system, options, f"Need to get {packaging.kilobytes(total)} of archives.")
        say(system, options, "After this operation, 0 B of additional disk space will be used.")


def _apply(system: System, options: dict, plan: Transaction) -> None:
    """Install the changes: dpkg's database, installed kernels, Debian's reboot-required files."""
    total = 0
    for number, item in enumerate(plan.changes, 1):
        size = packaging.size_kb(item.name, item.new.version)
        total += size
        where = item.new.origin.removesuffix(" Packages").rstrip()
        say(system, options, f"Get:{number} {where} {item.name} amd64 {item.new.version} [{packaging.kilobytes(size)}]")
    say(system, options, f"Fetched {packaging.kilobytes(total)} in 1s ({packaging.kilobytes(total)}/s)")
    say(system, options, "(Reading database ... 64358 files and directories currently installed.)")
    dpkg = state.packages(system)
    asking_reboot = []
    for item in plan.changes:
        name, new = item.name, item.new
        say(system, options, f"Preparing to unpack .../{name}_{new.version}_amd64.deb ...")
        if item.old is None:
            say(system, options, f"Selecting previously unselected package {name}.")
            say(system, options, f"Unpacking {name} ({new.version}) ...")
        else:
            say(system, options, f"Unpacking {name} ({new.version}) over ({item.old}) ...")
        entry = dpkg["packages"].setdefault(name, {"held": False, "description": packaging.description(name),
                                                   "origin": new.source})
        entry["version"] = new.version
        if new.kernel:
            entry["kernel"] = new.kernel
            if new.kernel not in dpkg["kernels"]:
                dpkg["kernels"].append(new.kernel)
        if new.reboot or new.kernel:
            asking_reboot.append(name)
    for item in plan.changes:
        say(system, options, f"Setting up {item.name} ({item.new.version}) ...")
    system.write_json(state.PACKAGES, dpkg)
    if asking_reboot:
        _notify_reboot_required(system, asking_reboot)


def _notify_reboot_required(system: System, names: list[str]) -> None:
    """What Debian's /usr/share/update-notifier/notify-reboot-required does for each package."""
    system.write_text(state.REBOOT_REQUIRED, "*** System restart required ***\n")
    listed = (system.read_text(state.REBOOT_REQUIRED_PKGS, "") or "").split()
    for name in names:
        if name not in listed:
            listed.append(name)
    system.write_text(state.REBOOT_REQUIRED_PKGS, "".join(f"{n}\n" for n in listed))


def _remove(system: System, options: dict, cache: Cache, targets: list[str]) -> int:
    dpkg = state.packages(system)
    gone = []
    for name in targets:
        if not cache.known(name):
            system.err(f"E: Unable to locate package {name}")
            return 100
        if name not in dpkg["packages"]:
            say(system, options, f"Package '{name}' is not installed, so not removed")
        else:
            gone.append(name)
    if gone:
        say(system, options, "The following packages will be REMOVED:")
        for line in packaging.package_list(sorted(gone)):
            say(system, options, line)
    say(system, options, f"0 upgraded, 0 newly installed, {len(gone)} to remove and "
                         f"{len(cache.upgradable())} not upgraded.")
    if not gone or options["simulate"]:
        return 0
    if not options["yes"]:
        answer = system.ask("Do you want to continue? [Y/n] ")
        if answer is None or answer.lower() not in ("", "y", "yes"):
            system.out("Abort.")
            return 1
    for name in gone:
        say(system, options, f"Removing {name} ({dpkg['packages'][name]['version']}) ...")
        del dpkg["packages"][name]
    system.write_json(state.PACKAGES, dpkg)
    return 0


def housekeeping(system: System, options: dict, command: str) -> int:
    if not system.is_root and command != "check":
        system.err("E: Could not open lock file /var/lib/dpkg/lock-frontend - open (13: Permission denied)\n"
                   "E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), are you root?")
        return 100
    for line in ("Reading package lists...", "Building dependency tree...", "Reading state information..."):
        say(system, options, line)
    if command == "autoremove":
        say(system, options, f"0 upgraded, 0 newly installed, 0 to remove and {len(_cache(system).upgradable())} "
                             f"not upgraded.")
    return 0


# -- apt-cache ----------------------------------------------------------------------------------


def apt_cache(system: System, args: list[str]) -> int:
    options, words = _cache_args(args)
    if not words:
        system.out(APT_CACHE_USAGE)
        return 1
    command, names = words[0], words[1:]
    try:
        dirs = AptDirs.from_options(options)
    except ValueError as exc:
        system.err(str(exc))
        return 100
    cache = _cache(system, dirs)
    if command == "madison":
        for name in names:
            for available in cache.versions(name):
                system.out(f"{name:>10} | {available.version:>10} | {available.origin}")
        return 0
    if command == "policy":
        for name in names:
            if cache.known(name):
                _policy(system, cache, name)
        return 0
    if command in ("show", "showpkg", "depends", "rdepends", "search", "pkgnames", "dump", "stats"):
        system.err(f"E: the lab's apt-cache answers madison and policy, not {command}")
        return 100
    system.err(f"E: Invalid operation {command}")
    return 100


def _cache_args(args: list[str]) -> tuple[list[str], list[str]]:
    """(the values of -o, the words): apt-cache's other options change nothing the lab shows."""
    config, words, pending = [], [], ""
    for arg in args:
        if pending:
            if pending in ("-o", "--option"):
                config.append(arg)
            pending = ""
        elif arg in VALUE_OPTIONS:
            pending = arg
        elif arg.startswith("--option="):
            config.append(arg.split("=", 1)[1])
        elif arg.startswith("-o") and len(arg) > 2:
            config.append(arg[2:])
        elif not arg.startswith("-"):
            words.append(arg)
    return config, words


def _policy(system: System, cache: Cache, name: str) -> None:
    installed = cache.installed_version(name)
    candidate = cache.candidate(name)
    system.out(f"{name}:")
    system.out(f"  Installed: {installed or '(none)'}")
    system.out(f"  Candidate: {candidate.version if candidate else installed or '(none)'}")
    system.out("  Version table:")
    shown_installed = False
    for available in cache.versions(name):
        star = " ***" if available.version == installed else "    "
        system.out(f"{star} {available.version} 500")
        system.out(f"        500 {available.origin}")
        if available.version == installed:
            system.out(f"        100 {DPKG_STATUS}")
            shown_installed = True
    if installed and not shown_installed:
        system.out(f" *** {installed} 100")
        system.out(f"        100 {DPKG_STATUS}")


# -- apt (list) ---------------------------------------------------------------------------------

APT_WARNING = "\nWARNING: apt does not have a stable CLI interface. Use with caution in scripts.\n"


def apt(system: System, args: list[str]) -> int:
    """`apt list [--upgradable|--installed]`; other apt commands behave as apt-get's."""
    words = [a for a in args if not a.startswith("-")]
    if words[:1] != ["list"]:
        system.err(APT_WARNING)
        return apt_get(system, args)
    system.err(APT_WARNING)
    cache = _cache(system)
    system.out("Listing...")
    if "--upgradable" in args or "--upgradeable" in args:
        for name in cache.upgradable():
            best = cache.candidate(name)
            system.out(f"{name}/{best.suite} {best.version} amd64 [upgradable from: {cache.installed_version(name)}]")
        return 0
    names = sorted(cache.installed) if "--installed" in args else sorted(cache.available)
    for name in names:
        installed = cache.installed_version(name)
        best = cache.candidate(name)
        version = best.version if best else installed
        suite = best.suite if best else "now"
        marks = ""
        if installed:
            marks = " [installed]" if installed == version else f" [installed,upgradable to: {version}]"
            if installed != version:
                version = installed
        system.out(f"{name}/{suite} {version} amd64{marks}")
    return 0
