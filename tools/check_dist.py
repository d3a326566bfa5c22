"""Check the release artifacts in a folder (default dist/): what the sdist and the wheel hold.

    python tools/check_dist.py [dist/]

- sdist: every tracked build input (csrc/ sources and headers, the package's modules,
  setup.py, pyproject.toml, CMakeLists.txt, MANIFEST.in, README.md, LICENSE) and nothing that a
  build writes (the build record cookbook_ops/_build_config.py, compiled libraries, caches) or
  that is not shipped (tests, benchmarks, examples, tools).
- wheel: the package's modules, the compiled extension and its build record; no tests,
  benchmarks, examples or C++ sources.
- both: named with the version of cookbook_ops/_version.py.
Exit status 1 with one line per problem.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOT_SHIPPED = ("tests/", "benchmarks/", "examples/", "tools/", ".ci/", "build/", ".venv/")
BUILD_OUTPUTS = (".so", ".pyd", ".pyc", ".o")
BUILD_RECORD = "cookbook_ops/_build_config.py"


def version() -> str:
    scope: dict = {}
    exec((ROOT / "cookbook_ops" / "_version.py").read_text(), scope)
    return scope["__version__"]


def tracked(*pathspecs: str) -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "--", *pathspecs], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return [line for line in out.stdout.splitlines() if line]


def check_sdist(path: Path, ver: str) -> list[str]:
    problems = []
    prefix = f"cookbook_ops-{ver}/"
    with tarfile.open(path) as tar:
        names = {m.name[len(prefix) :] for m in tar.getmembers() if m.isfile()}
    needed = tracked("csrc", "cookbook_ops/*.py") + [
        "setup.py",
        "pyproject.toml",
        "CMakeLists.txt",
        "MANIFEST.in",
        "README.md",
        "LICENSE",
        "PKG-INFO",
    ]
    for name in needed:
        if name not in names:
            problems.append(f"{path.name}: missing {name}")
    for name in sorted(names):
        if name == BUILD_RECORD or name.endswith(BUILD_OUTPUTS) or "__pycache__" in name:
            problems.append(f"{path.name}: carries the build output {name}")
        if name.startswith(NOT_SHIPPED):
            problems.append(f"{path.name}: carries {name}, which is not shipped")
    return problems


def check_wheel(path: Path, ver: str) -> list[str]:
    problems = []
    with zipfile.ZipFile(path) as whl:
        names = set(whl.namelist())
    for name in tracked("cookbook_ops/*.py"):
        if name not in names:
            problems.append(f"{path.name}: missing {name}")
    if BUILD_RECORD not in names:
        problems.append(f"{path.name}: missing the build record {BUILD_RECORD}")
    if not any(n.startswith("cookbook_ops/_C") and n.endswith((".so", ".pyd")) for n in names):
        problems.append(f"{path.name}: no compiled extension cookbook_ops/_C*")
    for name in sorted(names):
        if name.startswith(NOT_SHIPPED) or name.startswith("csrc/"):
            problems.append(f"{path.name}: carries {name}, which is not shipped")
        if "__pycache__" in name or name.endswith(".pyc"):
            problems.append(f"{path.name}: carries the cache file {name}")
    if f"cookbook_ops-{ver}.dist-info/licenses/LICENSE" not in names:
        problems.append(f"{path.name}: no LICENSE in its metadata")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dist", nargs="?", default=str(ROOT / "dist"))
    args = parser.parse_args(argv)
    ver = version()
    dist = Path(args.dist)
    sdists = sorted(dist.glob("cookbook_ops-*.tar.gz"))
    wheels = sorted(dist.glob("cookbook_ops-*.whl"))
    problems = []
    for kind, found in (("sdist", sdists), ("wheel", wheels)):
        if not found:
            problems.append(f"no {kind} in {dist}")
        for path in found:
            if not path.name.startswith(f"cookbook_ops-{ver}"):
                problems.append(f"{path.name}: not version {ver} (cookbook_ops/_version.py)")
    for path in sdists:
        problems += check_sdist(path, ver)
    for path in wheels:
        problems += check_wheel(path, ver)
    for line in problems:
        print(f"check_dist: {line}")
    names = ", ".join(p.name for p in sdists + wheels)
    print(f"check_dist: {'FAIL' if problems else 'OK'} ({names or 'nothing'})")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
