"""Payload events to an HTTP endpoint as CloudEvents in binary mode, as KServe's logger agent
posts them (its pkg/logger): one ``org.kubeflow.serving.inference.request`` event with the request
and one ``org.kubeflow.serving.inference.response`` with the response (or the error), both carrying
the request id as ``ce-id`` and the ``inferenceservicename``, ``namespace``, ``component`` and
``endpoint`` extensions, so a receiver written for KServe's logger takes them unchanged. Ours add
``modelversion``, ``protocol``, ``status`` and ``latencyms``, and ``traceparent`` (the CloudEvents
distributed-tracing extension) when the request had one."""

from __future__ import annotations

import asyncio
import os
import socket
from datetime import UTC, datetime
from pathlib import Path

import httpx

from ..core.payload_log import PayloadEvent, dumps

REQUEST_TYPE = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"
NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def pod_namespace() -> str:
    """The pod's namespace (its service account's), empty outside Kubernetes."""
    try:
        return NAMESPACE_FILE.read_text().strip()
    except OSError:
        return os.environ.get("POD_NAMESPACE", "")


class CloudEventSink:
    name = "http"

    def __init__(self, url: str, inference_service: str, mode: str = "all", timeout: float = 5.0):
        self.url = url
        self.mode = mode
        self.timeout = timeout
        # What KServe's agent sets from its flags; here from what the pod knows of itself.
        self.extensions = {
            "ce-inferenceservicename": inference_service,
            "ce-namespace": pod_namespace(),
            "ce-component": os.environ.get("MODEL_SERVER_LOG_COMPONENT", "predictor"),
            "ce-endpoint": os.environ.get("MODEL_SERVER_LOG_ENDPOINT", ""),
        }
        self.source = f"http://{socket.gethostname()}/{inference_service}"
        self._client: httpx.AsyncClient | None = None

    def _headers(self, event: PayloadEvent, kind: str) -> dict[str, str]:
        headers = {
            "ce-specversion": "1.0",
            "ce-id": event.id,
            "ce-type": kind,
            "ce-source": self.source,
            "ce-time": datetime.fromtimestamp(event.started if kind == REQUEST_TYPE else event.ended, UTC).isoformat(),
            **self.extensions,
            "ce-modelversion": event.version or "",
            "ce-protocol": event.protocol,
            "ce-status": str(event.status),
            "ce-latencyms": f"{event.latency_seconds * 1000:.3f}",
            "content-type": "application/json",
        }
        if event.traceparent:
            headers["ce-traceparent"] = event.traceparent
        return headers

    async def send(self, events: list[PayloadEvent]) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout)
        posts = []
        for event in events:
            if self.mode in ("request", "all") and event.request is not None:
                posts.append((self._headers(event, REQUEST_TYPE), dumps(event.request_json())))
            if self.mode in ("response", "all"):
                body = event.response_json()
                if body is not None:
                    posts.append((self._headers(event, RESPONSE_TYPE), dumps(body)))
        answers = await asyncio.gather(
            *(self._client.post(self.url, content=body, headers=headers) for headers, body in posts)
        )
        for answer in answers:
            answer.raise_for_status()

    async def flush(self) -> None:
        pass

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
