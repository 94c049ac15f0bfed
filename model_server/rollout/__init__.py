"""``python -m model_server.rollout``: release a new model version by itself, as a CI job runs it.

1. validate (``validate.py``): the new model directory loads in our server's ``Predictor``, its
   schema matches the stable version's, it answers a sample, and its holdout score is not worse
   than the stable one's by more than ``--max_regression``; nothing is deployed otherwise.
2. canary (``release.py``): ``helm upgrade --reuse-values`` with the chart's canary values.
3. analyse (``analysis.py``): every ``--interval`` for ``--duration``, the canary's and the stable
   version's error rate and p99 latency from Prometheus' HTTP API; fail fast past a threshold.
4. promote or roll back (``release.py``), and report each step with its figures (``report.py``).

May import: the core, httpx (Prometheus' API); helm is run as a command. No KServe: it runs in
CI jobs, next to nothing but the model files and helm.
"""
