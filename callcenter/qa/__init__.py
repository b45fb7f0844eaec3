"""Quality assurance: scoring recorded calls against evaluation forms.

The package owns the evaluation forms (YAML files in ``qa_forms/``, :mod:`.forms`), the scoring of
one evaluation (pure, :func:`.forms.score`), the ``qa_evaluations`` table (:mod:`.store`), the
per-agent and per-team roll-up of scores (pure, :mod:`.rollup`), and the QA analyst's web side:
the ``/api/qa/...`` endpoints and the ``/qa/`` page (:mod:`.web`, ``static/``). See docs/qa.md.
"""
