"""The box's IAM role: read/write the artifact bucket, read the database secret, no more."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

ASSUME_BY_EC2 = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "ec2.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
)


@dataclass(frozen=True)
class BoxRoleArgs:
    bucket_arn: pulumi.Input[str]
    # The RDS-managed master secret; None with the sqlite backend.
    db_secret_arn: pulumi.Input[str] | None
    tags: dict[str, str]


class BoxRole(pulumi.ComponentResource):
    """Role and instance profile of the box; the policy is scoped to this stack's ARNs."""

    def __init__(
        self, name: str, args: BoxRoleArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlops-box:index:BoxRole", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.role = aws.iam.Role(
            f"{name}-role",
            description="mlops-box: the box's own permissions",
            assume_role_policy=ASSUME_BY_EC2,
            tags=args.tags,
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-policy",
            role=self.role.id,
            policy=pulumi.Output.all(args.bucket_arn, args.db_secret_arn).apply(
                lambda arns: box_policy(arns[0], arns[1])
            ),
            opts=child,
        )
        self.profile = aws.iam.InstanceProfile(
            f"{name}-profile", role=self.role.name, tags=args.tags, opts=child
        )
        self.register_outputs({"role_arn": self.role.arn, "profile": self.profile.name})


def box_policy(bucket_arn: str, db_secret_arn: str | None) -> str:
    """The inline policy document: only this stack's bucket and secret."""
    statements: list[dict[str, object]] = [
        {
            "Sid": "ListArtifactBucket",
            "Effect": "Allow",
            "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
            "Resource": bucket_arn,
        },
        {
            "Sid": "ReadWriteArtifacts",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
            "Resource": f"{bucket_arn}/*",
        },
    ]
    if db_secret_arn:
        statements.append(
            {
                "Sid": "ReadDatabaseSecret",
                "Effect": "Allow",
                "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
                "Resource": db_secret_arn,
            }
        )
    return json.dumps({"Version": "2012-10-17", "Statement": statements})
