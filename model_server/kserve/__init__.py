"""The KServe front end, ``python -m model_server``: our core and HTTP routes inside KServe's own
``ModelServer``, as a KServe ServingRuntime runs it.

``__main__`` parses the settings (``settings``, KServe's flags accepted) and loads the models;
``server`` is the ``ModelServer`` glue (our routes in front of KServe's app, readiness, drain,
errors); ``model`` makes the core's served models and repository look like KServe's; ``grpc`` is
the V2 gRPC servicer, with the gRPC wire format's decode and encode side by side (it needs
KServe's protobuf classes); ``import_shim`` loads KServe without its Kubernetes client.

May import: KServe, FastAPI, grpc, the core and ``http/``. Only this folder imports KServe.
"""
