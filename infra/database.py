"""The optional MLflow backend: RDS PostgreSQL, private, reachable only from the box."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.config import DatabaseConfig, name_prefix
from remote.contract import DB_NAME

POSTGRES_PORT = 5432
POSTGRES_MAJOR_VERSION = "16"
DB_USER = "mlflow"
BACKUP_RETENTION_DAYS = 7


@dataclass(frozen=True)
class MlflowDatabaseArgs:
    box_name: str
    settings: DatabaseConfig
    vpc_id: pulumi.Input[str]
    subnet_ids: pulumi.Input[list[str]]
    box_security_group_id: pulumi.Input[str]
    tags: dict[str, str]


class MlflowDatabase(pulumi.ComponentResource):
    """RDS PostgreSQL for MLflow's backend store.

    The master password is generated and kept by AWS in Secrets Manager
    (`manage_master_user_password`), so it is never a literal here nor plain text in state.
    """

    def __init__(
        self, name: str, args: MlflowDatabaseArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlops-box:index:MlflowDatabase", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.security_group = aws.ec2.SecurityGroup(
            f"{name}-db-sg",
            description="mlops-box: PostgreSQL from the box only",
            vpc_id=args.vpc_id,
            tags={**args.tags, "Name": f"{name}-db"},
            opts=child,
        )
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-from-box",
            security_group_id=self.security_group.id,
            description="PostgreSQL from the box",
            ip_protocol="tcp",
            from_port=POSTGRES_PORT,
            to_port=POSTGRES_PORT,
            referenced_security_group_id=args.box_security_group_id,
            tags=args.tags,
            opts=child,
        )
        subnet_group = aws.rds.SubnetGroup(
            f"{name}-subnets",
            description="mlops-box: subnets of the MLflow database",
            subnet_ids=args.subnet_ids,
            tags=args.tags,
            opts=child,
        )
        db = args.settings
        # boxName is checked to keep the generated identifier within 63 characters.
        prefix = name_prefix(args.box_name)
        self.instance = aws.rds.Instance(
            f"{name}-postgres",
            identifier_prefix=prefix,
            engine="postgres",
            engine_version=POSTGRES_MAJOR_VERSION,
            instance_class=db.instance_class,
            allocated_storage=db.allocated_storage_gb,
            storage_type="gp3",
            storage_encrypted=True,
            db_name=DB_NAME,
            username=DB_USER,
            manage_master_user_password=True,
            port=POSTGRES_PORT,
            publicly_accessible=False,
            db_subnet_group_name=subnet_group.name,
            vpc_security_group_ids=[self.security_group.id],
            backup_retention_period=BACKUP_RETENTION_DAYS,
            copy_tags_to_snapshot=True,
            auto_minor_version_upgrade=True,
            deletion_protection=db.deletion_protection,
            skip_final_snapshot=db.skip_final_snapshot,
            final_snapshot_identifier=None if db.skip_final_snapshot else f"{prefix}final",
            tags=args.tags,
            opts=child,
        )
        self.endpoint = self.instance.endpoint
        self.secret_arn: pulumi.Output[str] = self.instance.master_user_secrets.apply(
            _first_secret_arn
        )
        self.register_outputs({"endpoint": self.endpoint, "secret_arn": self.secret_arn})


def _first_secret_arn(secrets: Sequence[aws.rds.outputs.InstanceMasterUserSecret]) -> str:
    return (secrets[0].secret_arn or "") if secrets else ""
