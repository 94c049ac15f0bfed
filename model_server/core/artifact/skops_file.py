"""skops: ``model.skops`` (or one other ``*.skops`` file), loaded with ``skops.io.load``.

A skops file is a zip of a JSON tree of objects; loading it constructs only the types skops
trusts by default (scikit-learn's estimators, numpy arrays, ...) and the ones listed under
``"skops_trusted_types"`` in metadata.json. Any other type refuses the directory, listing it,
before anything is constructed. skops 0.12 fixed CVE-2025-54412 (an ``operator`` call hidden
behind a harmless-looking type name), hence the pin ``skops>=0.12``.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path

from ..errors import ArtifactError
from ..metadata import METADATA_FILENAME, ModelMetadata
from .model_file import ModelFile

FILENAMES = ("model.skops",)
SUFFIXES = (".skops",)
TRUSTED_TYPES_KEY = "skops_trusted_types"


def open_model(path: Path, metadata: ModelMetadata) -> ModelFile:
    return ModelFile(path, "skops", metadata, lambda: load(path, metadata.skops_trusted_types))


def load(path: Path, trusted: Sequence[str], where: str = f'"{TRUSTED_TYPES_KEY}" in {METADATA_FILENAME}'):
    """The object in a skops file, if every type it needs is trusted by skops or listed in ``trusted``."""
    import skops.io

    try:
        untrusted = sorted(set(skops.io.get_untrusted_types(file=path)) - set(trusted))
        if untrusted:
            raise ArtifactError(
                f"{path}: untrusted types {untrusted}: skops constructs only its default trusted types and "
                f"those listed under {where}; list a type there once you have reviewed it"
            )
        return skops.io.load(path, trusted=list(trusted))
    except ArtifactError:
        raise
    except zipfile.BadZipFile:
        raise ArtifactError(f"cannot load {path}: not a skops file (not a zip archive)") from None
    except Exception as exc:  # skops refuses a malformed or malicious tree with ValueError, TypeError, ...
        detail = " ".join(str(exc).split())  # one line
        reason = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
        raise ArtifactError(f"cannot load {path}: {reason}"[:1000]) from exc
