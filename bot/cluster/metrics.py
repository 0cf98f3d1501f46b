"""The cluster client's Prometheus metrics (docs/operations.md, "Metrics")."""

from __future__ import annotations

import functools
from typing import Any

from kubernetes.client.exceptions import ApiException
from prometheus_client import Counter
from urllib3.exceptions import HTTPError as TransportError

API_ERRORS = Counter("kubemaint_kube_api_errors", "Kubernetes API requests that failed, by HTTP status (every "
                     "attempt, retried ones too; \"unreachable\": no answer, the connection failed)", ["status"])


def count_errors(api: Any) -> None:
    """Count the failed requests of the kubernetes ApiClient `api`. Wrapped at `call_api`, which every
    request goes through, answered or not: the generated API classes raise on a non-2xx status later,
    in more places than one."""
    call_api = api.call_api

    @functools.wraps(call_api)
    def counted(*args: Any, **kwargs: Any) -> Any:
        try:
            response = call_api(*args, **kwargs)
        except ApiException as error:  # the client's own (status 0: a TLS failure, say)
            API_ERRORS.labels(str(error.status) if error.status else "unreachable").inc()
            raise
        except (TransportError, OSError):
            API_ERRORS.labels("unreachable").inc()
            raise
        status = getattr(response, "status", 200)
        if not 200 <= status <= 299:
            API_ERRORS.labels(str(status)).inc()
        return response

    api.call_api = counted
