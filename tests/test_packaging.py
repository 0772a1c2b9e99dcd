"""Packaging: pip and conda name the same runtime dependencies, and the console script runs."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
# A requirement is a name followed by an optional version specifier: "panel>=1.9,<1.11".
REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(.*?)\s*$")
NOT_PACKAGES = {"python", "pip"}


def parse_requirements(lines: list[str]) -> dict[str, str]:
    parsed = {}
    for line in lines:
        match = REQUIREMENT.match(line)
        assert match, f"cannot parse requirement {line!r}"
        name = re.sub(r"[-_.]+", "-", match.group(1)).lower()
        parsed[name] = match.group(2).replace(" ", "")
    return parsed


def pyproject_runtime_deps() -> dict[str, str]:
    with open(ROOT / "pyproject.toml", "rb") as f:
        project = tomllib.load(f)["project"]
    return parse_requirements(project["dependencies"])


def conda_runtime_deps() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]  # the pip: list is a dict
    return {
        name: spec for name, spec in parse_requirements(conda).items() if name not in NOT_PACKAGES
    }


def test_pyproject_and_environment_yml_name_the_same_runtime_dependencies():
    pip_deps, conda_deps = pyproject_runtime_deps(), conda_runtime_deps()
    assert set(pip_deps) == set(conda_deps), (
        f"only in pyproject.toml: {sorted(set(pip_deps) - set(conda_deps))}; "
        f"only in environment.yml: {sorted(set(conda_deps) - set(pip_deps))}"
    )
    assert pip_deps == conda_deps  # and with the same version bounds


def test_environment_yml_installs_the_package_itself_with_pip():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert pip_sections and any(line.startswith("-e .") for line in pip_sections[0])


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("tradelab")
    assert script.exists(), f"console script {script} is missing; run `pip install -e .`"
    return subprocess.run(
        [str(script), *args], capture_output=True, text=True, timeout=60, cwd=ROOT
    )


def test_tradelab_help_runs():
    result = run_cli("--help")
    assert result.returncode == 0, result.stderr
    assert "bench" in result.stdout


def test_tradelab_bench_bus_help_runs():
    result = run_cli("bench", "bus", "--help")
    assert result.returncode == 0, result.stderr
    for option in ("--json", "--rounds", "--n"):
        assert option in result.stdout


# Import names whose distribution is named otherwise.
DISTRIBUTION_OF = {"yaml": "pyyaml", "prometheus_client": "prometheus-client"}


def imported_distributions(paths: list[Path]) -> set[str]:
    """The third-party distributions `paths` (module files) import, at any nesting level."""
    import ast

    found = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module.split(".")[0])
    found -= {*sys.stdlib_module_names, "tradelab"}
    return {DISTRIBUTION_OF.get(name, name).replace("_", "-").lower() for name in found}


def test_every_package_tradelab_imports_is_declared():
    # psutil (who holds a journal) was declared only for benchmarks, and tornado not at all:
    # a plain `pip install` crashed on a second engine's journal.
    with open(ROOT / "pyproject.toml", "rb") as f:
        bench_extra = tomllib.load(f)["project"]["optional-dependencies"]["bench"]
    runtime = {name.replace("_", "-") for name in pyproject_runtime_deps()}
    bench = runtime | set(parse_requirements(bench_extra))
    modules = sorted((ROOT / "tradelab").rglob("*.py"))
    benchmarking = [p for p in modules if "benchmarking" in p.parts]
    product = [p for p in modules if "benchmarking" not in p.parts]
    assert not imported_distributions(product) - runtime, "not in [project.dependencies]"
    assert not imported_distributions(benchmarking) - bench, "not in the bench extra"
