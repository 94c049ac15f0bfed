"""How versions are ordered and which of them are served: one place for both, below the
repository, the data plane and the settings that name a policy."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import SettingsError


def version_order(version: str) -> tuple:
    """Numbered versions by number (10 after 9), others after them by name."""
    return (0, int(version), "") if version.isdigit() else (1, 0, version)


@dataclass(frozen=True)
class VersionPolicy:
    """Which of the complete versions to serve: ``latest``, ``latest:N``, ``all``, ``specific:1,3``."""

    kind: str = "latest"
    count: int = 1
    versions: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> VersionPolicy:
        kind, _, argument = text.partition(":")
        if kind == "latest" and not argument:
            return cls("latest", 1)
        if kind == "latest" and argument.isdigit() and int(argument) >= 1:
            return cls("latest", int(argument))
        if kind == "all" and not argument:
            return cls("all")
        if kind == "specific" and argument and all(v.strip().isdigit() for v in argument.split(",")):
            return cls("specific", versions=tuple(v.strip() for v in argument.split(",")))
        raise SettingsError(f"--version_policy {text!r}: expected latest, latest:N, all or specific:1,3")

    def select(self, versions: list[str]) -> list[str]:
        ordered = sorted(versions, key=version_order)
        if self.kind == "latest":
            return ordered[-self.count :]
        if self.kind == "specific":
            return [v for v in ordered if v in self.versions]
        return ordered

    def __str__(self) -> str:
        return {"latest": f"latest:{self.count}", "all": "all"}.get(self.kind, f"specific:{','.join(self.versions)}")
