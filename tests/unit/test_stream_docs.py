"""docs/streaming.md stays true to the consumer: every flag documented with its real default."""

import dataclasses
import re

from model_server.stream.settings import StreamSettings
from tests.support.tools import REPO

DOC = (REPO / "docs" / "streaming.md").read_text()


def flag_rows() -> dict[str, str]:
    table = DOC.split("## Flags", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for flags, default in re.findall(r"^\| (`--[^|]+) \| ([^|]+) \|", table, flags=re.M):
        for flag in re.findall(r"`--(\w+)`", flags):
            rows[flag] = default.strip()
    return rows


def test_every_flag_is_documented_and_only_real_ones():
    fields = {field.name for field in dataclasses.fields(StreamSettings)}
    assert set(flag_rows()) == fields


def test_documented_defaults_are_the_real_ones():
    for field in dataclasses.fields(StreamSettings):
        documented = flag_rows()[field.name]
        if field.default in ("", None):
            assert documented in ("(required)", "none"), (field.name, documented)
        else:
            value = field.default
            shown = f"{value:g}" if isinstance(value, float) else str(value)
            assert documented == f"`{shown}`", (field.name, documented, shown)
