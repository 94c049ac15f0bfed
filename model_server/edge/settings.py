"""The edge runtime's settings: every HTTP listener's, with an edge device's defaults (no
Kubernetes endpoints to drain from), and the address to listen on."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.errors import SettingsError
from ..core.settings import ModelSettings, redefault, setting
from ..http.settings import HttpSettings


@dataclass(frozen=True)
class EdgeSettings(HttpSettings):
    model_dir: str = redefault(ModelSettings, "model_dir", "model")
    host: str = setting("0.0.0.0", "Address to listen on.")
    drain_seconds: float = redefault(HttpSettings, "drain_seconds", 0.0)
    grace_seconds: float = redefault(HttpSettings, "grace_seconds", 10.0)

    def check(self) -> None:
        super().check()
        if self.model_repository:
            raise SettingsError("--model_repository: the edge runtime serves one model (--model_dir)")
