"""What an operator watches a running deployment by: structured logs (``logs``) and
Prometheus metrics (``metrics``)."""
