"""The one place that touches moto internals: Lambda invocations dispatched in-process.

moto's Step Functions interpreter invokes Lambda Task states through moto's Lambda backend,
which ends in `moto.awslambda.models.LambdaFunction.invoke(self, body, request_headers,
response_headers)`. Replacing that method routes every invocation to a Python callable
(the real handler), keyed by function name. tests/unit/test_moto_hooks.py fails loudly if a
moto upgrade moves it.
"""

from __future__ import annotations

import json
import threading
import traceback
from collections.abc import Callable
from contextlib import contextmanager

from moto.awslambda import models as _lambda_models

Invoke = Callable[[str, dict], object]
_lock = threading.Lock()
_routes: dict[str, Invoke] = {}
_original = _lambda_models.LambdaFunction.invoke


def _dispatch(self, body, request_headers, response_headers):
    route = _routes.get(self.function_name)
    if route is None:
        return _original(self, body, request_headers, response_headers)
    event = json.loads(body) if body else {}
    try:
        result = route(self.function_name, event)
    except Exception as exc:  # the Lambda service reports a handler's exception as a payload
        response_headers["x-amz-function-error"] = "Unhandled"
        return json.dumps(
            {
                "errorMessage": str(exc),
                "errorType": type(exc).__name__,
                "stackTrace": traceback.format_exception(exc)[-5:],
            }
        ).encode()
    return json.dumps(result, default=str).encode()


@contextmanager
def lambda_routes(routes: dict[str, Invoke]):
    """While active, invoking a function named in `routes` calls routes[name](name, event)."""
    with _lock:
        _routes.update(routes)
        _lambda_models.LambdaFunction.invoke = _dispatch
    try:
        yield
    finally:
        with _lock:
            for name in routes:
                _routes.pop(name, None)
            if not _routes:
                _lambda_models.LambdaFunction.invoke = _original
