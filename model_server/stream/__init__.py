"""``python -m model_server.stream``: predict from a Kafka topic, answer on another, lose nothing.

One more front end over the data plane (``core.dataplane.DataPlane``): each message is decoded
(``messages.py``), predicted by the same ``Predictor`` and micro-batcher as the server's requests,
and its response (or its error) produced with ``acks=all`` before its offset is committed, in
order per partition (``offsets.py``, ``consumer.py``). ``ops.py`` serves /healthz, /readyz and
/metrics.

May import: the core, aiokafka, uvicorn (the ops port). Not KServe, FastAPI or grpc.
"""
