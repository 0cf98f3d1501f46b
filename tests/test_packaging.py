"""`pip install kubemaint` installs what the bot needs and nothing of the lab's: every third-party module
that bot/ and handlers/ import belongs to a core dependency, the lab's own dependencies are in the
`[lab]` extra, and the image installs the product alone, as a numeric non-root user."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions, requires
from pathlib import Path

ROOT = Path(__file__).parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
FIRST_PARTY = {"bot", "handlers", "lab", "tests"}
# Modules a core dependency brings with it (its own distribution is a requirement of that dependency):
# the product may import them without listing them.
COMES_WITH = {"botocore": "boto3", "pydantic_core": "pydantic"}


def distribution_name(requirement: str) -> str:
    """`slack-bolt>=1.20` -> `slack-bolt`, normalized as PEP 503 does."""
    return re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9._-]+", requirement)[0]).lower()


def third_party_imports(package: str) -> dict[str, set[str]]:
    """Top-level module -> the files under `package` that import it (stdlib and first-party left out)."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in FIRST_PARTY:
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def distributions_of(module: str) -> set[str]:
    return {distribution_name(d) for d in packages_distributions().get(module, [])}


def undeclared(imports: dict[str, set[str]], declared: set[str]) -> list[str]:
    problems = []
    for module, files in sorted(imports.items()):
        brought_by = COMES_WITH.get(module)
        if distributions_of(module) & declared or (brought_by and distribution_name(brought_by) in declared):
            continue
        problems.append(f"{module} ({', '.join(sorted(distributions_of(module))) or 'not installed'}) "
                        f"imported by {', '.join(sorted(files))}")
    return problems


CORE = {distribution_name(r) for r in PYPROJECT["project"]["dependencies"]}
LAB = {distribution_name(r) for r in PYPROJECT["project"]["optional-dependencies"]["lab"]}


def test_the_bot_imports_only_its_core_dependencies():
    imports = {**third_party_imports("bot")}
    for module, files in third_party_imports("handlers").items():
        imports.setdefault(module, set()).update(files)
    assert {"kubernetes", "slack_bolt", "paramiko", "redis"} <= imports.keys()  # the walk finds real imports
    assert undeclared(imports, CORE) == [], "add these to [project] dependencies, or keep them out of the product"


def test_the_lab_needs_only_the_core_and_its_extra():
    assert undeclared(third_party_imports("lab"), CORE | LAB) == []


def test_the_lab_extra_holds_only_what_the_product_does_not_import():
    product = third_party_imports("bot").keys() | third_party_imports("handlers").keys()
    lab_only = {m for m in third_party_imports("lab") if distributions_of(m) & LAB}
    assert lab_only == {"aiohttp", "cryptography", "jsonpatch", "multidict"}
    assert not lab_only & product
    assert not LAB & CORE


def test_what_brings_the_unlisted_modules_really_requires_them():
    for module, dependency in COMES_WITH.items():
        assert distribution_name(dependency) in CORE
        required = {distribution_name(r) for r in requires(dependency) or []}
        assert distributions_of(module) & required, f"{dependency} no longer requires {module}"


def test_make_installs_the_lab_for_the_demo_and_the_tests():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"pip install .*-e '\.\[lab,test\]'", makefile)


def test_the_image_installs_the_product_alone_and_runs_as_a_numeric_non_root_user():
    lines = [line.split() for line in (ROOT / "deploy" / "Dockerfile").read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    copied = {words[1] for words in lines if words[0] == "COPY"}
    assert {"bot", "handlers"} <= copied and "lab" not in copied
    installs = [" ".join(words) for words in lines if words[0] == "RUN" and "pip" in words]
    assert installs and all("[" not in command for command in installs), installs  # no extras
    users = [words[1] for words in lines if words[0] == "USER"]
    assert users, "the image would run as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, f"USER {users[-1]}: Kubernetes' runAsNonRoot needs a numeric uid"
