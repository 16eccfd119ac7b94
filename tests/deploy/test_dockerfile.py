"""deploy/Dockerfile: multi-stage, no compiler and no secret in the final image, non-root."""

from __future__ import annotations

import re
import shlex
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DOCKERIGNORE = ROOT / "deploy" / "Dockerfile.dockerignore"
SECRET_WORDS = re.compile(r"PASSWORD|SECRET|TOKEN|KEY|PASSPHRASE|CREDENTIAL")
BUILD_TOOLS = {"gcc", "g++", "cc", "clang", "make", "build-essential", "pkg-config", "cpp"}


@dataclass(frozen=True)
class Instruction:
    keyword: str
    value: str
    line: int


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined; comments (also inside continuations) dropped."""
    instructions: list[Instruction] = []
    buffer: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer.append(stripped[:-1].strip())
            continue
        buffer.append(stripped)
        keyword, _, value = " ".join(buffer).partition(" ")
        instructions.append(Instruction(keyword.upper(), value.strip(), start))
        buffer = []
    assert not buffer, "the Dockerfile ends inside a continuation"
    return instructions


def split_stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    stages: list[list[Instruction]] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def env_pairs(instruction: Instruction) -> dict[str, str]:
    pairs = {}
    for word in shlex.split(instruction.value):
        key, sep, value = word.partition("=")
        assert sep, f"ENV on line {instruction.line} uses the legacy 'ENV key value' form"
        pairs[key] = value
    return pairs


def shell_commands(script: str) -> list[list[str]]:
    """The simple commands of a RUN line, split on ``&&``, ``||``, ``;`` and ``|`` outside quotes."""
    lexer = shlex.shlex(script, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    for token in lexer:
        if token in {"&&", "||", ";", "|", "&"}:
            commands.append([])
        else:
            commands[-1].append(token)
    return [command for command in commands if command]


def apt_packages(instruction: Instruction) -> list[str]:
    packages = []
    for words in shell_commands(instruction.value):
        if words[0] in {"apt-get", "apt"} and "install" in words:
            after = words[words.index("install") + 1 :]
            packages += [word for word in after if not word.startswith("-")]
    return packages


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    return parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    return split_stages(instructions)


@pytest.fixture(scope="module")
def final(stages: list[list[Instruction]]) -> list[Instruction]:
    return stages[-1]


def of(stage: list[Instruction], keyword: str) -> list[Instruction]:
    return [instruction for instruction in stage if instruction.keyword == keyword]


def test_it_parses_continuations_and_comments() -> None:
    parsed = parse_dockerfile("# syntax=x\nFROM a AS b\nRUN one \\\n    # comment\n    two\nENV A=1 B='x y'\n")
    assert [(i.keyword, i.value) for i in parsed] == [("FROM", "a AS b"), ("RUN", "one two"), ("ENV", "A=1 B='x y'")]
    assert env_pairs(parsed[2]) == {"A": "1", "B": "x y"}
    script = "apt-get update && apt-get install -y --no-install-recommends a b; python -c 'x; y' && apt install c"
    assert apt_packages(Instruction("RUN", script, 1)) == ["a", "b", "c"]


def test_it_builds_in_two_stages_from_the_same_pinned_base(stages: list[list[Instruction]]) -> None:
    assert len(stages) >= 2
    bases = [stage[0].value.split()[0] for stage in stages]
    assert bases == ["python:3.11-slim-bookworm"] * len(stages)
    assert stages[0][0].value.split()[-1] == "builder"


def test_it_notes_that_production_pins_by_digest() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert re.search(r"^#.*digest", text, re.MULTILINE | re.IGNORECASE)


def test_it_runs_the_final_stage_as_uid_10001(final: list[Instruction]) -> None:
    users = of(final, "USER")
    assert users
    user = users[-1].value
    assert user.split(":")[0] not in {"", "root", "0"}
    assert user == "10001:10001"
    (creates,) = [i for i in of(final, "RUN") if "useradd" in i.value]
    assert "--uid 10001" in creates.value
    assert "--gid 10001" in creates.value
    # Nothing runs as root after the switch, and the image's command is what runs as 10001.
    after = final[final.index(users[-1]) :]
    assert not of(after, "RUN")
    assert of(after, "CMD")


def test_it_installs_no_compiler_in_the_final_stage(final: list[Instruction]) -> None:
    packages = [package for run in of(final, "RUN") for package in apt_packages(run)]
    assert packages
    for package in packages:
        assert package not in BUILD_TOOLS, package
        assert not package.endswith("-dev"), package
    text = " ".join(i.value for i in final)
    assert not re.search(r"\b(gcc|build-essential)\b", text)


def test_it_installs_the_runtime_libraries_only_in_the_final_stage(final: list[Instruction]) -> None:
    (install,) = [run for run in of(final, "RUN") if apt_packages(run)]
    packages = set(apt_packages(install))
    assert {"libxml2", "libxmlsec1", "libxmlsec1-openssl", "tini"} <= packages
    assert any(package.startswith("postgresql-client") for package in packages)
    assert "--no-install-recommends" in install.value
    assert "rm -rf /var/lib/apt/lists/*" in install.value


def test_it_keeps_the_build_dependencies_in_the_builder(stages: list[list[Instruction]]) -> None:
    packages = {package for run in of(stages[0], "RUN") for package in apt_packages(run)}
    assert {"build-essential", "pkg-config", "libxml2-dev", "libxmlsec1-dev", "libxmlsec1-openssl"} <= packages


def test_it_checks_the_final_image_with_a_healthcheck(final: list[Instruction]) -> None:
    (healthcheck,) = of(final, "HEALTHCHECK")
    assert healthcheck.value.upper() != "NONE"
    assert '"/app/deploy/healthcheck.py"' in healthcheck.value


def test_it_runs_gunicorn_under_tini(final: list[Instruction]) -> None:
    assert of(final, "ENTRYPOINT")[-1].value == '["tini", "--"]'
    command = '["gunicorn", "--config", "deploy/gunicorn.conf.py", "caspix.wsgi:application"]'
    assert of(final, "CMD")[-1].value == command
    assert of(final, "WORKDIR")[-1].value == "/app"
    assert of(final, "EXPOSE")[-1].value == "8000"


def test_it_sets_the_runtime_environment(final: list[Instruction]) -> None:
    environment = {key: value for env in of(final, "ENV") for key, value in env_pairs(env).items()}
    assert environment["CASPIX_ENV"] == "production"
    assert environment["PYTHONDONTWRITEBYTECODE"] == "1"
    assert environment["PYTHONUNBUFFERED"] == "1"
    assert environment["PATH"].startswith("/opt/venv/bin:")
    assert environment["CASPIX_STATIC_ROOT"] == "/app/staticfiles"
    assert environment["PROMETHEUS_MULTIPROC_DIR"].startswith("/tmp/")


def test_it_copies_the_venv_and_the_app_from_the_builder(final: list[Instruction]) -> None:
    copies = [i.value for i in of(final, "COPY")]
    assert "--from=builder /opt/venv /opt/venv" in copies
    assert "--from=builder /app /app" in copies


def test_it_puts_no_secret_in_an_env_or_arg_line(instructions: list[Instruction]) -> None:
    for instruction in instructions:
        if instruction.keyword == "ENV":
            for key, value in env_pairs(instruction).items():
                assert not SECRET_WORDS.search(key) or key.endswith("_FILE"), (instruction.line, key)
                assert "placeholder" not in value.lower(), (instruction.line, key)
        if instruction.keyword in {"ARG", "LABEL"}:
            name = instruction.value.split("=", 1)[0]
            assert not SECRET_WORDS.search(name) or name.endswith("_FINGERPRINT"), instruction.line


def test_it_gives_collectstatic_throwaway_values_on_its_run_line_only(
    instructions: list[Instruction], stages: list[list[Instruction]]
) -> None:
    (collectstatic,) = [i for i in instructions if i.keyword == "RUN" and "collectstatic" in i.value]
    assert collectstatic in stages[0], "collectstatic runs in the builder"
    assignments = dict(re.findall(r"\b([A-Z][A-Z0-9_]*)=(\S+)", collectstatic.value))
    assert assignments["CASPIX_ENV"] == "production"
    assert len(assignments["CASPIX_SECRET_KEY"]) >= 50
    assert assignments["CASPIX_ALLOWED_HOSTS"] == "build"
    assert assignments["DATABASE_URL"] == "postgres://build@localhost/build"
    assert assignments["CELERY_BROKER_URL"] == "redis://localhost:6379/0"
    assert "python manage.py collectstatic --noinput" in collectstatic.value
    for name in ("CASPIX_SECRET_KEY", "CASPIX_VAULT_TOKEN"):
        value = assignments[name]
        for other in instructions:
            if other is not collectstatic:
                assert value not in other.value, (name, other.line)
            if other.keyword == "ENV":
                assert name not in env_pairs(other), (name, other.line)


def test_it_copies_every_package_pyproject_ships(stages: list[list[Instruction]]) -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = [name.rstrip("*") for name in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]]
    copies = {i.value.split()[0] for i in of(stages[0], "COPY")}
    assert set(packages) <= copies
    assert {"templates", "static", "manage.py"} <= copies


# --- deploy/Dockerfile.dockerignore --------------------------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out + r"\Z")


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    result = False
    for raw in patterns:
        negated = raw.startswith("!")
        pattern = raw.removeprefix("!").strip("/")
        regex = _pattern_regex(pattern)
        if any(regex.match(candidate) for candidate in candidates):
            result = not negated
    return result


@pytest.fixture(scope="module")
def ignore_patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def test_it_says_how_the_dockerignore_is_used() -> None:
    head = DOCKERIGNORE.read_text(encoding="utf-8").splitlines()[0]
    assert head.startswith("#")
    assert ".dockerignore" in head


@pytest.mark.parametrize(
    "path",
    [
        ".git/config",
        ".venv/bin/python",
        "var/caspix.sqlite3",
        "staticfiles/x.css",
        "tests/conftest.py",
        "bench/run.py",
        "docs/KEYS.md",
        "node_modules/htmx.org/package.json",
        "caspix/__pycache__/settings.cpython-311.pyc",
        "caspix/settings.pyc",
        ".env",
        "deploy/.env",
        "deploy/secrets/caspix_secret_key",
        "deploy/docker-compose.yml",
        "dump.sql",
    ],
)
def test_it_keeps_out_of_the_build_context(ignore_patterns: list[str], path: str) -> None:
    assert ignored(path, ignore_patterns)


def test_it_keeps_everything_the_dockerfile_copies(ignore_patterns: list[str], stages: list[list[Instruction]]) -> None:
    sources = [
        word
        for copy in of(stages[0], "COPY")
        if not copy.value.startswith("--from")
        for word in copy.value.split()[:-1]
    ]
    assert "deploy/gunicorn.conf.py" in sources
    for source in sources:
        assert not ignored(source, ignore_patterns), source
    for path in ("caspix/settings.py", "static/caspix/app.css", "templates/base.html", "deploy/healthcheck.py"):
        assert not ignored(path, ignore_patterns), path
