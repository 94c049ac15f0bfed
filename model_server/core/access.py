"""Who may load and unload models: the repository API is off unless enabled, and may need a token.

An open management API lets anyone who reaches the pod remove its only model (TorchServe's became
CVE-2023-43654). Here it is off by default in single-model mode (``--repository_api``), and with
``--management_token`` every call must carry ``Authorization: Bearer <token>``. REST and gRPC
check the same way.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from .errors import Disabled, Unauthorized


@dataclass(frozen=True)
class ManagementAccess:
    enabled: bool = False
    token: str | None = None

    def check(self, authorization: str | None) -> None:
        """Raise Disabled or Unauthorized unless a call with this Authorization header may manage models."""
        if not self.enabled:
            raise Disabled(
                "the model repository API is off: start the server with --repository_api true "
                "(MODEL_SERVER_REPOSITORY_API=true), and --management_token to require a token"
            )
        if self.token is None:
            return
        scheme, _, presented = (authorization or "").partition(" ")
        # Constant-time comparison: the time taken must not tell how much of a guess was right.
        if scheme.lower() != "bearer" or not hmac.compare_digest(presented.strip().encode(), self.token.encode()):
            raise Unauthorized("the model repository API needs Authorization: Bearer <management token>")
