"""The rollout's settings: the model ones every front end has, and the release's own.

Flags are spelt as every front end's (``--max_regression``, ``--model_dir``); the dashed
spellings of earlier releases (``--max_regression``) are still accepted, unlisted. Each is also a
``MODEL_SERVER_<FIELD>`` variable, as everywhere in the project.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from ..core.errors import SettingsError
from ..core.settings import ModelSettings, boolean, flag_of, optional, setting

# Scores the holdout can be judged on; which way is better for each (see validate.METRICS).
METRIC_CHOICES = ("auto", "accuracy", "balanced_accuracy", "f1_macro", "roc_auc", "log_loss", "r2", "mae", "rmse")
DESCRIPTION = (
    "Release a new model version: validate it against the stable one (load, schema, sample, holdout "
    "score), deploy it as a canary with helm, judge it on Prometheus metrics against the stable "
    "version, then promote or roll it back. Exit codes: 0 promoted, 1 rolled back, 2 usage, "
    "3 refused by validation (nothing deployed), 4 helm or Prometheus failed, 130 interrupted."
)
# Fields of ModelSettings that mean nothing to a rollout (it validates one model directory).
UNUSED = ("model_repository", "version_policy")
# Fields every front end shares: they never had a dashed spelling.
MODEL_FIELDS = {field.name for field in dataclasses.fields(ModelSettings)}


@dataclass(frozen=True)
class RolloutSettings(ModelSettings):
    model_dir: str = setting(
        "",
        "The new version's model directory (what --storage_uri holds), as the server would load it.",
    )
    model_name: str = setting(
        "model",
        "The model's name: the InferenceService's (model.name in the chart, else the release name); "
        'the metrics are selected by model="NAME" unless --selector says otherwise.',
    )
    stable_model_dir: str = setting(
        "",
        "The stable version's model directory (what the release serves now): the schema and the "
        "holdout score are compared with it.",
    )
    sample: str | None = setting(
        None,
        "A JSON request body (V1 {instances} or V2 {inputs}) the new version must answer without error; "
        "without it, one row derived from the model's metadata.",
        optional(str),
    )
    holdout: str | None = setting(
        None,
        "A labelled CSV file (a header row; the model's feature names as columns, or its features in "
        "order, and --label_column) scored by both versions.",
        optional(str),
    )
    label_column: str = setting("label", "The holdout's label column.")
    metric: str = setting(
        "auto",
        "The holdout score; auto: accuracy for classifiers, r2 for regressors.",
        choices=METRIC_CHOICES,
    )
    max_regression: float = setting(
        0.01,
        "How much worse than the stable version's the new version's holdout score may be, in the "
        "metric's own units (0.01: one accuracy point).",
        float,
        minimum=0,
    )
    allow_schema_change: bool = setting(
        False,
        "Deploy although the inputs or outputs differ from the stable version's (reported, not refused).",
        boolean,
    )
    validate_only: bool = setting(
        False,
        "Run step 1 only (a pull request's check): exit 0 if it passes, 3 if not.",
        boolean,
    )
    storage_uri: str = setting(
        "",
        "Where the cluster downloads the new version from (s3://, gs://, pvc://, https://...): the "
        "canary's canary.storageUri, then the promoted model.storageUri.",
    )
    release: str = setting("", "The Helm release (default: --model_name).")
    namespace: str = setting("default", "The release's namespace.")
    chart: str = setting(
        "charts/model-server",
        "The chart to upgrade with: this repository's, or oci://REGISTRY/charts/model-server with --chart_version.",
    )
    chart_version: str = setting("", "The chart version (for an OCI or repository chart).")
    kube_context: str = setting("", "The kubeconfig context helm uses (default: the current one).")
    helm: str = setting("helm", "The helm command.")
    helm_timeout: float = setting(
        600.0,
        "Seconds each helm upgrade may wait for the InferenceService (helm --wait --timeout).",
        float,
        minimum=1,
    )
    traffic_percent: int = setting(10, "The canary's share of the requests, in percent.", int, minimum=1)
    prometheus_url: str = setting(
        "",
        "Prometheus' base URL (its HTTP API, /api/v1/query): where the release's metrics are scraped to.",
    )
    selector: str = setting(
        "",
        'PromQL label matchers every query adds, e.g. namespace="prod",model="iris" (default: '
        'model="--model_name"); the two versions are then told apart by their version label.',
    )
    duration: float = setting(
        600.0,
        "Seconds the canary is analysed for; it is promoted only if every step of it holds.",
        float,
        minimum=0.1,
    )
    interval: float = setting(60.0, "Seconds between two analysis steps.", float, minimum=0.1)
    window: float = setting(
        60.0,
        "Seconds of metrics each step judges (the PromQL range); keep it above two scrape intervals "
        "(the chart's ServiceMonitor scrapes every 30 s).",
        float,
        minimum=0.1,
    )
    max_error_rate: float = setting(
        0.01,
        "How much the canary's error rate (share of requests not answered 2xx) may exceed the stable "
        "version's in a window: 0.01 is one point.",
        float,
        minimum=0,
    )
    max_latency_ratio: float = setting(
        1.5,
        "How many times the stable version's p99 latency the canary's may be.",
        float,
        minimum=1,
    )
    min_requests: int = setting(
        20,
        "Fewest requests each version must have answered in a window for the step to be judged; a step "
        "with fewer has no data (allowed only before the first step with data).",
        int,
        minimum=1,
    )
    dry_run: bool = setting(
        False,
        "Print the helm commands instead of running them; validation and analysis run as usual (they change nothing).",
        boolean,
    )
    report: str | None = setting(None, "Write the report as JSON to this file too.", optional(str))

    @classmethod
    def build_parser(cls, prog: str, description: str, parents: Sequence[argparse.ArgumentParser] = ()):
        parser = super().build_parser(prog, description, parents)
        for field in dataclasses.fields(cls):
            if field.name in UNUSED:
                parser._option_string_actions[flag_of(field)].help = argparse.SUPPRESS
            elif "_" in field.name and field.name not in MODEL_FIELDS:  # the dashed spelling, unlisted
                dashed = parser._option_string_actions[flag_of(field)]
                parser.add_argument(
                    "--" + field.name.replace("_", "-"),
                    dest=field.name,
                    nargs=dashed.nargs,
                    const=dashed.const,
                    type=dashed.type,
                    choices=dashed.choices,
                    default=argparse.SUPPRESS,
                    help=argparse.SUPPRESS,
                )
        return parser

    @property
    def release_name(self) -> str:
        return self.release or self.model_name

    @property
    def label_selector(self) -> str:
        return self.selector or f'model="{promql_string(self.model_name)}"'

    def check(self) -> None:
        super().check()
        if self.model_repository:
            raise SettingsError("--model_repository is not used by the rollout: give --model_dir")
        missing = [
            flag
            for flag, value in (("--model_dir", self.model_dir), ("--stable_model_dir", self.stable_model_dir))
            if not value
        ]
        if not self.validate_only:
            missing += [
                f for f, v in (("--storage_uri", self.storage_uri), ("--prometheus_url", self.prometheus_url)) if not v
            ]
        if missing:
            raise SettingsError(
                f"missing {', '.join(missing)}" + ("" if self.validate_only else " (or --validate_only)")
            )
        if self.traffic_percent > 99:
            raise SettingsError(f"--traffic_percent must be 1-99, got {self.traffic_percent}")
        if self.interval > self.duration:
            raise SettingsError(f"--interval ({self.interval:g} s) must not exceed --duration ({self.duration:g} s)")


def promql_string(value: str) -> str:
    """VALUE inside a PromQL double-quoted string."""
    return value.replace("\\", "\\\\").replace('"', '\\"')
