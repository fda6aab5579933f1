"""Delivering the outbox (``mail send``): ``claims`` (what a run holds, fenced), ``compose``
(one row to bytes, a bad row isolated), ``transport`` (SMTP or ``.eml`` files, message versus
server failures), ``run_settings`` (a run's settings, backoff and summary) and ``delivery`` (the
run)."""
