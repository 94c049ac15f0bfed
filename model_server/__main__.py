"""``python -m model_server``: the KServe front end (``kserve/__main__.py``), under its old name."""

import runpy

if __name__ == "__main__":
    runpy.run_module("model_server.kserve", run_name="__main__", alter_sys=True)
