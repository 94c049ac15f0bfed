"""``python -m model_server.edge``: the edge runtime, for devices without Kubernetes or KServe.

    python -m model_server.export --model_dir models/iris --out models/iris-onnx
    python -m model_server.edge --model_dir models/iris-onnx --model_name iris --http_port 8080

Serves a model directory (an exported ONNX directory, to need no scikit-learn) over the same V1
and V2 REST protocol (and MLflow's /invocations) as the server, with the same codec, schema checks, error messages,
micro-batching, limits and drain on SIGTERM: the same ASGI routes (``http.routes.DataPlaneRoutes``) on
uvicorn, over the same core. It imports neither KServe, FastAPI, pandas, scikit-learn nor scipy
(a pickled model would bring scikit-learn in: export it first). No gRPC: on a device REST is
what clients have; the main server serves gRPC. TLS, mutual TLS and ``--auth`` as the server's
(docs/security.md: the edge device case).

May import: the core, ``http/``, uvicorn, prometheus-client. Not KServe, FastAPI or grpc.
"""
