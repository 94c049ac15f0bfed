"""model-server: scikit-learn (and ONNX, MLflow, skops) models served on KServe and beyond.

The package is one core and front ends over it. ``core/`` loads and checks models, decodes and
encodes the wire formats, batches and predicts, and answers every request through one
``DataPlane``; it knows nothing of KServe or of any transport (``tests/unit/test_core_imports.py``
walks it and fails on an import of kserve, fastapi, grpc, uvicorn or aiokafka, or of a front
end). Each other folder is a front end, a transport or a tool over that core: ``http/`` (the REST
routes and connection handling), ``kserve/`` (``python -m model_server``), ``edge/``,
``export/``, ``stream/``, ``batch/``, ``rollout/``. A new protocol is a new folder calling the
data plane. docs/architecture.md draws it.
"""

DISTRIBUTION = "sklearn-model-server"  # the name on PyPI (``model-server`` there is another project)


def server_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "0+unknown"
