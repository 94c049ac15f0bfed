"""The inference core: everything between a model directory and an answer, for every front end.

Artifacts (``artifact/``, ``metadata``) become a checked ``Predictor`` (``schema``,
``estimator_inputs``, ``engines``, ``onnx/``, ``batching``); the ``repository`` serves versions of
models and swaps them live (``versions``); requests in every wire format (``codec/``) are
answered through one ``DataPlane`` (``dataplane``); large bodies are decoded in a helper process
(``body_decoder``); ``settings`` holds the flag machinery and the one predictor loader; errors,
metrics and who may manage models (``errors``, ``metrics``, ``access``) are the same everywhere.

May import: the standard library, numpy, scikit-learn, orjson, prometheus-client, and (lazily,
where a model needs them) onnxruntime, skl2onnx, skops, cloudpickle, yaml, uvloop. Never KServe,
FastAPI, grpc, uvicorn or aiokafka, and never a front end: ``tests/unit/test_core_imports.py``
walks this folder to keep it so.
"""
