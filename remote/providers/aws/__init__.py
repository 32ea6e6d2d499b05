"""The AWS provider: all boto3 code of the controller lives in this package."""

from remote.providers.aws.provider import AwsProvider

__all__ = ["AwsProvider"]
