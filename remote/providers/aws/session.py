"""The one small boto3 adaptor: sessions and clients for the controller side.

boto3 already honours the standard environment: AWS_PROFILE, AWS_DEFAULT_REGION,
AWS_ENDPOINT_URL (and AWS_ENDPOINT_URL_EC2, ...), the credential chain. This module only
adds the box's region (fabric.yaml / the Pulumi stack, which `load_settings` already
resolves through AWS_REGION and AWS_DEFAULT_REGION) and one retry policy, and turns
botocore's failures into the project's errors.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError
from botocore.parsers import ResponseParserError

from remote.errors import ConfigError, ProviderError
from remote.settings import BoxSettings

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

# botocore's "standard" retry mode retries the named transient errors itself: throttling
# (Throttling, RequestLimitExceeded, ...), 5xx, RequestTimeout and connection errors, with
# exponential backoff and a retry quota. Nothing else is retried: a refused call is
# reported, not repeated.
RETRY_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5})


def session(settings: BoxSettings) -> boto3.session.Session:
    """A session in the box's region, with the profile named by AWS_PROFILE if set."""
    try:
        sess = boto3.session.Session(
            profile_name=os.environ.get("AWS_PROFILE") or None,
            region_name=settings.region or None,
        )
    except BotoCoreError as exc:  # e.g. ProfileNotFound
        raise ConfigError(f"AWS configuration problem: {exc}. Check AWS_PROFILE.") from None
    if not sess.region_name:
        raise ConfigError(
            "No AWS region is set: set aws:region in Pulumi.<stack>.yaml, box.region in "
            "fabric.yaml, or AWS_REGION."
        )
    return sess


def ec2_client(settings: BoxSettings) -> EC2Client:
    """An EC2 client for the box's region, retrying throttling (standard mode)."""
    try:
        return session(settings).client("ec2", config=RETRY_CONFIG)
    except NoRegionError:  # pragma: no cover - session() checks the region first
        raise ConfigError("No AWS region is set: set AWS_REGION or box.region.") from None


@contextmanager
def aws_errors(action: str) -> Iterator[None]:
    """Turn botocore failures during `action` into one-sentence ProviderErrors.

    Retries have already happened inside botocore by the time an error gets here.
    """
    try:
        yield
    except NoCredentialsError:
        raise ProviderError(
            f"Cannot {action}: no AWS credentials found. Run `aws configure` "
            "(or `aws sso login`), or set AWS_PROFILE."
        ) from None
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = error.get("Code", "Unknown")
        message = error.get("Message", str(exc))
        raise ProviderError(f"Cannot {action}: AWS said {code}: {message}") from None
    except BotoCoreError as exc:
        raise ProviderError(f"Cannot {action}: {exc}") from None
    except ResponseParserError:
        # Not a BotoCoreError: an HTML error page (a proxy, a captive portal, a wrong
        # AWS_ENDPOINT_URL) that botocore cannot parse. Its text would only be markup.
        raise ProviderError(
            f"Cannot {action}: the AWS endpoint answered with something other than an AWS "
            "response (an HTML error page?): check AWS_ENDPOINT_URL, any proxy and the "
            "network, then run again."
        ) from None
