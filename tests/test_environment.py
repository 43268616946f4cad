"""The three places that name the dependencies agree: pyproject.toml (ranges), environment.yml
(the same ranges, for conda users) and requirements/pins.txt (the tested versions, inside the ranges)."""

import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def _pyproject() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + project["optional-dependencies"]["course"]
    return {canonicalize_name(r.name): r for r in map(Requirement, reqs)}


def _environment() -> dict[str, Requirement]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    reqs = [Requirement(line) for line in pip if not line.startswith("-e")]
    return {canonicalize_name(r.name): r for r in reqs}


def _pins() -> dict[str, Requirement]:
    lines = [l.strip() for l in (ROOT / "requirements" / "pins.txt").read_text().splitlines()]
    reqs = [Requirement(l) for l in lines if l and not l.startswith("#")]
    return {canonicalize_name(r.name): r for r in reqs}


def test_environment_yml_lists_the_same_dependencies_as_pyproject():
    py, env = _pyproject(), _environment()
    assert sorted(py) == sorted(env), f"only in pyproject: {sorted(set(py) - set(env))}; only in environment.yml: {sorted(set(env) - set(py))}"
    for name in py:
        assert py[name].specifier == env[name].specifier, f"{name}: pyproject says {py[name].specifier}, environment.yml says {env[name].specifier}"


def test_environment_yml_installs_the_package_itself():
    assert "-e ." in (ROOT / "environment.yml").read_text()


def test_every_dependency_is_pinned_inside_its_range():
    py, pins = _pyproject(), _pins()
    missing = sorted(set(py) - set(pins))
    assert not missing, f"dependencies without a tested pin in requirements/pins.txt: {missing}"
    for name, req in py.items():
        (version,) = [s.version for s in pins[name].specifier]
        assert req.specifier.contains(version, prereleases=True), f"{name}: pinned {version} is outside {req.specifier}"
