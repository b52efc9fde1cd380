"""boto3 clients with every wait bounded, and AWS failures turned into one-line messages.

The only module of the package that imports boto3/botocore, and only when the first client is
made. Every client gets connect and read timeouts and a bounded number of attempts (botocore's
standard retry mode: throttling and transient errors are retried with backoff, then reported).

Connect and read timeouts bound each socket operation, not a call: an endpoint that trickles a
byte now and then keeps one call alive for minutes. So every request (every page of a listing)
also runs under a total deadline (``aws.call_timeout``), and an endpoint that timed out or could
not be reached is remembered as dead for the rest of the run: later calls to it fail at once
with that cause instead of each waiting out its own timeouts.

An ``AwsError`` is a ``CouldNotObserve``: a check whose API call failed reports "could not
observe" with the call and the endpoint, never a pass and never a wrong value.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlparse

from pytest_drcheck import __version__
from pytest_drcheck.aws.inventory import INSTALL_HINT, AwsSettings
from pytest_drcheck.deadline import DeadlineExceeded, call_with_deadline
from pytest_drcheck.durations import format_duration
from pytest_drcheck.model import CouldNotObserve

# Tests set this so that no client can ever reach a real AWS endpoint: a client whose endpoint
# is not on the loopback interface is refused before it sends anything.
LOOPBACK_ONLY_ENV = "DRCHECK_AWS_LOOPBACK_ONLY"
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


# Failures that say the endpoint itself is not answering (as opposed to an API error).
_DEAD_CODES = frozenset({"Timeout", "EndpointConnectionError", "Deadline"})


class AwsError(CouldNotObserve):
    """An AWS call failed; the message is one line for the user (never a secret value)."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


def describe_error(exc: BaseException, what: str) -> AwsError:
    """One line for a botocore/boto3 failure of ``what`` (e.g. ``DescribeSourceServers``)."""
    from botocore import exceptions as bce

    if isinstance(exc, AwsError):
        return exc
    if isinstance(exc, bce.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "error"))
        # One line, bounded: a proxy or a broken endpoint may answer with a whole HTML page.
        message = " ".join(str(error.get("Message", "")).split())[:300] or "no message"
        return AwsError(f"{what} failed: {code}: {message}", code)
    if isinstance(exc, bce.NoCredentialsError):
        return AwsError(f"{what}: no AWS credentials found; configure credentials for the DR "
                        "account (environment, aws.profile or an instance role)", "NoCredentials")
    if isinstance(exc, bce.ProfileNotFound):
        return AwsError(f"{what}: {exc}; fix aws.profile", "ProfileNotFound")
    if isinstance(exc, (bce.ConnectTimeoutError, bce.ReadTimeoutError)):
        return AwsError(f"{what}: AWS did not answer in time ({exc})", "Timeout")
    if isinstance(exc, bce.EndpointConnectionError):
        return AwsError(f"{what}: cannot reach the AWS endpoint ({exc}); check aws.region and "
                        "aws.endpoint_url", "EndpointConnectionError")
    if isinstance(exc, bce.ParamValidationError):
        return AwsError(f"{what}: invalid request: {exc}", "ParamValidation")
    text = " ".join(str(exc).split())[:300]
    if isinstance(exc, bce.BotoCoreError):
        return AwsError(f"{what}: {text}", type(exc).__name__)
    return AwsError(f"{what}: {type(exc).__name__}: {text}", type(exc).__name__)


class AwsClients:
    """One boto3 session per run, one client per service, created on first use (thread-safe)."""

    def __init__(self, settings: AwsSettings, max_pool_connections: int = 32) -> None:
        self.settings = settings
        self._max_pool = max_pool_connections
        self._clients: dict[str, Any] = {}
        self._session: Any = None
        self._lock = threading.Lock()
        # Endpoint URL -> why it is dead (the first call that timed out or could not connect).
        self._dead: dict[str, str] = {}

    def client(self, service: str) -> Any:
        with self._lock:
            if service not in self._clients:
                self._clients[service] = self._make(service)
            return self._clients[service]

    def _make(self, service: str) -> Any:
        try:
            import boto3
            from botocore.config import Config
        except ImportError:
            raise AwsError(f"AWS support is not installed (boto3 missing); {INSTALL_HINT}",
                           "NotInstalled") from None
        settings = self.settings
        config = Config(
            region_name=settings.region,
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
            retries={"total_max_attempts": settings.max_attempts, "mode": "standard"},
            max_pool_connections=self._max_pool,
            user_agent_extra=f"pytest-drcheck/{__version__}",
        )
        endpoint = settings.endpoint(service)
        try:
            if self._session is None:
                # boto3.Session is not thread-safe: made once, under the lock held by client().
                self._session = boto3.session.Session(profile_name=settings.profile,
                                                      region_name=settings.region)
            client = self._session.client(service, config=config, endpoint_url=endpoint)
        except Exception as exc:
            raise describe_error(exc, f"creating the {service} client") from None
        if os.environ.get(LOOPBACK_ONLY_ENV):
            host = urlparse(str(client.meta.endpoint_url)).hostname or ""
            if host not in _LOOPBACK:
                raise AwsError(f"refusing the {service} endpoint {client.meta.endpoint_url}: "
                               f"{LOOPBACK_ONLY_ENV} is set (tests must never reach real AWS)",
                               "LoopbackOnly")
        return client

    def dead_endpoints(self) -> dict[str, str]:
        """Endpoints given up on in this run, with the cause (for the evidence)."""
        with self._lock:
            return dict(self._dead)

    def call(self, service: str, operation: str, **params: Any) -> Mapping[str, Any]:
        """``client.<operation>(**params)`` under the total deadline, failures as AwsError."""
        client = self.client(service)
        what = client.meta.method_to_api_mapping.get(operation, operation)
        response: Mapping[str, Any] = self._bounded(
            client, what, lambda: getattr(client, operation)(**params))
        return response

    def pages(self, service: str, operation: str, key: str, **params: Any
              ) -> Iterator[Mapping[str, Any]]:
        """Every item under ``key`` across all pages of a paginated operation (each page's
        request under the total deadline)."""
        client = self.client(service)
        what = client.meta.method_to_api_mapping.get(operation, operation)
        pages = iter(client.get_paginator(operation).paginate(**params))  # lazy: no request
        done = object()
        while True:
            page = self._bounded(client, what, lambda: next(pages, done))
            if page is done:
                return
            yield from page.get(key, [])

    def _bounded(self, client: Any, what: str, request: Any) -> Any:
        endpoint = str(client.meta.endpoint_url)
        with self._lock:
            dead = self._dead.get(endpoint)
        if dead is not None:
            raise AwsError(f"{what} not sent: {endpoint} is not answering ({dead})", "Dead")
        limit = self.settings.call_timeout
        try:
            return call_with_deadline(request, limit, f"aws-{what}")
        except DeadlineExceeded:
            error = AwsError(f"{what}: no complete answer from {endpoint} within "
                             f"{format_duration(limit)} (aws.call_timeout)", "Deadline")
        except Exception as exc:
            error = describe_error(exc, what)
        if error.code in _DEAD_CODES:
            with self._lock:
                self._dead.setdefault(endpoint, str(error))
        raise error
