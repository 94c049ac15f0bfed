"""``python -m model_server.stream``: predict from a Kafka topic, answer on another, lose nothing.

One more front end over the data plane (``core.dataplane.DataPlane``): the messages of a fetch
are decoded (``messages.py``) and predicted together by the same ``Predictor`` and micro-batcher
as the server's requests (``DataPlane.infer_many``), and each response (or error) produced with
``acks=all`` before its offset is committed, in order per partition (``offsets.py``,
``consumer.py``). ``ops.py`` serves /healthz, /readyz and /metrics; ``workers.py`` forks
``--workers`` consumers.

May import: the core, aiokafka, uvicorn (the ops port), and the server's pre-fork supervisor
``kserve/workers.py`` (plain Python, no KServe). Not KServe, FastAPI or grpc.
"""
