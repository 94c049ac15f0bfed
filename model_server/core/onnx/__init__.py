"""ONNX in the core: serving an exported graph (``model.py``, read from ``model.onnx`` by
``artifact/onnx_file.py``) and converting an estimator for ONNX Runtime (``engine.py``). Writing
an exported directory is the ``export/`` front end's job. onnxruntime and skl2onnx are imported
only when used."""
