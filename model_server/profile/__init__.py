"""python -m model_server.profile: the reference profile of a model's inputs and outputs, written
at training or release time beside the model (``profile.json``, pinned by ``profile_sha256`` in
metadata.json). Reads its rows with the batch front end's reader (Parquet, CSV, JSON Lines) and
predicts them with the batch scorer; no KServe, no transport."""
