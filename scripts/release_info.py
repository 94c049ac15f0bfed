#!/usr/bin/env python3
"""The project's version, kept in one place (pyproject.toml), and what a release says about it.

  release_info.py version          print the version
  release_info.py check [TAG]      every copy of the version equals pyproject.toml's (the chart's
                                   version and appVersion, the Dockerfile's VERSION default, the
                                   kustomize image tags) and CHANGELOG.md has its section; with
                                   TAG (v0.1.0), the tag names that version too
  release_info.py notes VERSION    print CHANGELOG.md's section for VERSION (the GitHub release's text)

Exit codes: 0 fine, 1 a copy disagrees or a section is missing (each named), 2 usage.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CHANGELOG = REPO / "CHANGELOG.md"
KUSTOMIZATIONS = ("manifests/base/kustomization.yaml", "manifests/overlays/custom-container/kustomization.yaml")


def version() -> str:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def copies() -> dict[str, str]:
    """Where else the version is written, and what each place says (read with the standard library
    alone: the release job runs this before any install)."""
    chart = (REPO / "charts/model-server/Chart.yaml").read_text()
    found = {}
    for key in ("version", "appVersion"):
        match = re.search(rf'(?m)^{key}: "?([^"\s]+)"?$', chart)
        found[f"charts/model-server/Chart.yaml {key}"] = match.group(1) if match else "(none)"
    dockerfile = re.search(r"(?m)^ARG VERSION=(\S+)$", (REPO / "Dockerfile").read_text())
    found["Dockerfile ARG VERSION"] = dockerfile.group(1) if dockerfile else "(none)"
    for path in KUSTOMIZATIONS:
        # The model-server image's entry: `- name: model-server` ... `newTag: "X"`.
        match = re.search(
            r'(?m)^  - name: model-server\n(?:    .*\n)*?    newTag: "?([^"\s]+)"?$', (REPO / path).read_text()
        )
        found[f"{path} newTag"] = match.group(1) if match else "(none)"
    return found


def section(text: str, wanted: str) -> str | None:
    """The body of the `## [VERSION]` section of a Keep a Changelog file."""
    match = re.search(rf"(?ms)^## \[{re.escape(wanted)}\][^\n]*\n(.*?)(?=^## \[|\Z)", text)
    if not match:
        return None
    body = re.sub(r"(?m)^\[[^\]]+\]: \S+\n?", "", match.group(1))  # link definitions belong to the file
    return body.strip()


def problems(tag: str | None = None) -> list[str]:
    wanted = version()
    found = [
        f"{where} is {value}, pyproject.toml says {wanted}" for where, value in copies().items() if value != wanted
    ]
    if tag is not None and tag != f"v{wanted}":
        found.append(f"the tag {tag} is not v{wanted} (pyproject.toml's version)")
    if not section(CHANGELOG.read_text(), wanted):
        found.append(f"CHANGELOG.md has no '## [{wanted}]' section with text")
    return found


def main(argv: list[str]) -> int:
    if argv[:1] == ["version"] and len(argv) == 1:
        print(version())
        return 0
    if argv[:1] == ["check"] and len(argv) <= 2:
        found = problems(argv[1] if len(argv) == 2 else None)
        for problem in found:
            print(f"release_info: {problem}", file=sys.stderr)
        if not found:
            print(f"release_info: version {version()} everywhere, with its CHANGELOG.md section")
        return 1 if found else 0
    if argv[:1] == ["notes"] and len(argv) == 2:
        wanted = argv[1].removeprefix("v")
        body = section(CHANGELOG.read_text(), wanted)
        if body is None:
            print(f"release_info: CHANGELOG.md has no '## [{wanted}]' section", file=sys.stderr)
            return 1
        print(body)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
