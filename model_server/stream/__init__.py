"""``python -m model_server.stream``: predict from a Kafka topic, answer on another, lose nothing.

One more front end over the inference seam (``inference.infer``): each message is decoded
(``messages.py``), predicted by the same ``Predictor`` and micro-batcher as the server's requests,
and its response (or its error) produced with ``acks=all`` before its offset is committed, in
order per partition (``offsets.py``, ``consumer.py``). ``ops.py`` serves /healthz, /readyz and
/metrics. Nothing here imports KServe.
"""
