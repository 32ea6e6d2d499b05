"""Pulumi runtime mocks that really create each resource in moto.

The Pulumi engine and the AWS provider plugin cannot run here, so these mocks stand in for
them: every `new_resource` is carried out against moto with boto3, as the provider would
against AWS, and answers with moto's ids and attributes; every invoke is answered from
moto's state. Tests then assert against moto with boto3, not only against Pulumi inputs.
A resource type without a handler fails loudly, so new infrastructure needs a handler here.

The mocks never supply a value the program should have set: an optional field the program
left out is left out of the boto3 call too, so the service's default applies. Where moto's
default differs from real AWS's, the handler applies AWS's, with the reference beside it.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3
import pulumi

State = dict[str, Any]


@dataclass
class Declared:
    typ: str
    name: str
    inputs: dict[str, Any]
    id: str


def _physical(name: str, prefix: str | None = None) -> str:
    """A physical name as the engine and provider make it, of the same length, so that
    moto's length checks see what AWS would: a `*_prefix` gets a 26-character unique
    suffix (the provider's), a logical name `-` and 7 random hex digits (Pulumi's)."""
    return f"{prefix}{secrets.token_hex(13)}" if prefix else f"{name}-{secrets.token_hex(4)[:7]}"


def _given(inputs: dict[str, Any], fields: dict[str, tuple[str, Callable[[Any], Any]]]) -> State:
    """boto3 arguments for the fields the program set, converted, and for no others."""
    return {
        api: convert(inputs[key])
        for key, (api, convert) in fields.items()
        if inputs.get(key) is not None
    }


def _tags(inputs: dict[str, Any]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": str(v)} for k, v in (inputs.get("tags") or {}).items()]


def _tag_spec(resource_type: str, inputs: dict[str, Any]) -> list[dict[str, Any]]:
    tags = _tags(inputs)
    return [{"ResourceType": resource_type, "Tags": tags}] if tags else []


@dataclass
class MotoMocks(pulumi.runtime.Mocks):
    region: str = "us-east-1"
    declared: list[Declared] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.ec2 = boto3.client("ec2", region_name=self.region)
        self.s3 = boto3.client("s3", region_name=self.region)
        self.iam = boto3.client("iam", region_name=self.region)
        self.rds = boto3.client("rds", region_name=self.region)
        self._resources: dict[str, Callable[[str, dict[str, Any]], tuple[str, State]]] = {
            "aws:ec2/securityGroup:SecurityGroup": self._security_group,
            "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": self._ingress_rule,
            "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": self._egress_rule,
            "aws:ec2/keyPair:KeyPair": self._key_pair,
            "aws:ec2/instance:Instance": self._instance,
            "aws:ec2/eip:Eip": self._eip,
            "aws:s3/bucket:Bucket": self._bucket,
            "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": self._public_access_block,
            "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": self._encryption,  # noqa: E501
            "aws:s3/bucketVersioning:BucketVersioning": self._versioning,
            "aws:s3/bucketOwnershipControls:BucketOwnershipControls": self._ownership,
            "aws:s3/bucketPolicy:BucketPolicy": self._bucket_policy,
            "aws:iam/role:Role": self._role,
            "aws:iam/rolePolicy:RolePolicy": self._role_policy,
            "aws:iam/instanceProfile:InstanceProfile": self._instance_profile,
            "aws:rds/subnetGroup:SubnetGroup": self._db_subnet_group,
            "aws:rds/instance:Instance": self._db_instance,
        }
        self._calls: dict[str, Callable[[dict[str, Any]], State]] = {
            "aws:ec2/getVpc:getVpc": self._get_vpc,
            "aws:ec2/getSubnets:getSubnets": self._get_subnets,
            "aws:ec2/getAmi:getAmi": self._get_ami,
            "aws:index/getRegion:getRegion": lambda _: {"region": self.region, "id": self.region},
        }

    # -- the Mocks interface ------------------------------------------------------------
    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, State]:
        if args.typ.startswith("mlops-box:"):  # components declare nothing in AWS themselves
            return None, {}
        handler = self._resources.get(args.typ)
        if handler is None:
            raise NotImplementedError(f"moto_mocks has no handler for {args.typ}: add one")
        resource_id, outputs = handler(args.name, dict(args.inputs))
        self.declared.append(Declared(args.typ, args.name, dict(args.inputs), resource_id))
        return resource_id, {**args.inputs, **outputs}

    def call(self, args: pulumi.runtime.MockCallArgs) -> State:
        handler = self._calls.get(args.token)
        if handler is None:
            raise NotImplementedError(f"moto_mocks has no handler for invoke {args.token}")
        return handler(dict(args.args))

    # -- invokes --------------------------------------------------------------------------
    def _get_vpc(self, args: dict[str, Any]) -> State:
        filters = [{"Name": "is-default", "Values": ["true"]}] if args.get("default") else []
        vpc = self.ec2.describe_vpcs(Filters=filters)["Vpcs"][0]
        return {"id": vpc["VpcId"], "cidrBlock": vpc["CidrBlock"], "default": vpc["IsDefault"]}

    def _get_subnets(self, args: dict[str, Any]) -> State:
        filters = [{"Name": f["name"], "Values": f["values"]} for f in args.get("filters", [])]
        subnets = self.ec2.describe_subnets(Filters=filters)["Subnets"]
        return {"ids": [s["SubnetId"] for s in subnets], "id": self.region}

    def _get_ami(self, args: dict[str, Any]) -> State:
        filters = [{"Name": f["name"], "Values": f["values"]} for f in args.get("filters", [])]
        images = self.ec2.describe_images(Owners=args.get("owners", []), Filters=filters)["Images"]
        if not images:
            raise ValueError("Your query returned no results. Change the search criteria.")
        if len(images) > 1 and not args.get("mostRecent"):
            raise ValueError("Your query returned more than one result.")
        image = max(images, key=lambda i: i["CreationDate"])
        return {
            "id": image["ImageId"],
            "name": image["Name"],
            "ownerId": image["OwnerId"],
            "architecture": image["Architecture"],
        }

    # -- EC2 ------------------------------------------------------------------------------
    def _security_group(self, name: str, inputs: dict[str, Any]) -> tuple[str, State]:
        group_name = _physical(name)
        group_id = self.ec2.create_security_group(
            GroupName=group_name,
            Description=inputs.get("description", "Managed by Pulumi"),
            VpcId=inputs["vpcId"],
            TagSpecifications=_tag_spec("security-group", inputs),
        )["GroupId"]
        # Like the provider, drop AWS's implicit allow-all egress: only declared rules remain.
        self.ec2.revoke_security_group_egress(
            GroupId=group_id,
            IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}],
        )
        return group_id, {"name": group_name, "arn": f"arn:aws:ec2:::security-group/{group_id}"}

    def _permission(self, inputs: dict[str, Any]) -> dict[str, Any]:
        protocol = inputs["ipProtocol"]
        permission: dict[str, Any] = {"IpProtocol": protocol}
        if protocol != "-1":
            permission["FromPort"] = int(inputs["fromPort"])
            permission["ToPort"] = int(inputs["toPort"])
        description = inputs.get("description", "")
        if "cidrIpv4" in inputs:
            permission["IpRanges"] = [{"CidrIp": inputs["cidrIpv4"], "Description": description}]
        elif "cidrIpv6" in inputs:
            permission["Ipv6Ranges"] = [
                {"CidrIpv6": inputs["cidrIpv6"], "Description": description}
            ]
        elif "referencedSecurityGroupId" in inputs:
            permission["UserIdGroupPairs"] = [
                {"GroupId": inputs["referencedSecurityGroupId"], "Description": description}
            ]
        else:
            raise ValueError("a security group rule needs a CIDR or a referenced group")
        return permission

    def _ingress_rule(self, name: str, inputs: dict[str, Any]) -> tuple[str, State]:
        rules = self.ec2.authorize_security_group_ingress(
            GroupId=inputs["securityGroupId"],
            IpPermissions=[self._permission(inputs)],
            TagSpecifications=_tag_spec("security-group-rule", inputs),
        )["SecurityGroupRules"]
        return rules[0]["SecurityGroupRuleId"], {
            "securityGroupRuleId": rules[0]["SecurityGroupRuleId"]
        }

    def _egress_rule(self, name: str, inputs: dict[str, Any]) -> tuple[str, State]:
        rules = self.ec2.authorize_security_group_egress(
            GroupId=inputs["securityGroupId"],
            IpPermissions=[self._permission(inputs)],
            TagSpecifications=_tag_spec("security-group-rule", inputs),
        )["SecurityGroupRules"]
        return rules[0]["SecurityGroupRuleId"], {
            "securityGroupRuleId": rules[0]["SecurityGroupRuleId"]
        }

    def _key_pair(self, name: str, inputs: dict[str, Any]) -> tuple[str, State]:
        key_name = inputs.get("keyName") or _physical(name, inputs.get("keyNamePrefix"))
        pair = self.ec2.import_key_pair(
            KeyName=key_name,
            PublicKeyMaterial=inputs["publicKey"].encode(),
            TagSpecifications=_tag_spec("key-pair", inputs),
        )
        return key_name, {
            "keyName": key_name,
            "keyPairId": pair["KeyPairId"],
            "fingerprint": pair["KeyFingerprint"],
        }

    def _instance(self, name: str, inputs: dict[str, Any]) -> tuple[str, State]:
        if not inputs.get("associatePublicIpAddress"):
            raise ValueError("the box needs a public address to be reachable over SSH")
        root = inputs.get("rootBlockDevice") or {}
        tag_specs = _tag_spec("instance", inputs)
        if root.get("tags"):
            tag_specs += [{"ResourceType": "volume", "Tags": _tags(root)}]
        # moto's defaults for unset metadata options and shutdown behaviour are AWS's for an
        # EBS-backed image without ImdsSupport v2.0 (EC2 API Reference, RunInstances:
        # InstanceMetadataOptionsRequest; InstanceInitiatedShutdownBehavior "Default: stop").
        shutdown = "instanceInitiatedShutdownBehavior"
        optional = _given(inputs, {shutdown: (shutdown[0].upper() + shutdown[1:], str)})
        metadata = _given(
            inputs.get("metadataOptions") or {},
            {
                "httpTokens": ("HttpTokens", str),
                "httpEndpoint": ("HttpEndpoint", str),
                "httpPutResponseHopLimit": ("HttpPutResponseHopLimit", int),
                "instanceMetadataTags": ("InstanceMetadataTags", str),
            },
        )
        if metadata:
            optional["MetadataOptions"] = metadata
        instance = self.ec2.run_instances(
            ImageId=inputs["ami"],
            InstanceType=inputs["instanceType"],
            MinCount=1,
            MaxCount=1,
            KeyName=inputs["keyName"],
            # moto reports an instance's groups only when given at the top level (AWS does
            # either way); default subnets give the public address the program asks for.
            SubnetId=inputs["subnetId"],
            SecurityGroupIds=inputs["vpcSecurityGroupIds"],
            IamInstanceProfile={"Name": inputs["iamInstanceProfile"]},
            BlockDeviceMappings=[self._root_device(inputs["ami"], root)],
            TagSpecifications=tag_specs,
            **optional,
        )["Instances"][0]
        return instance["InstanceId"], {
            "arn": f"arn:aws:ec2:{self.region}::instance/{instance['InstanceId']}",
            "publicIp": instance.get("PublicIpAddress", ""),
            "publicDns": instance.get("PublicDnsName", ""),
            "privateIp": instance.get("PrivateIpAddress", ""),
        }

    def _root_device(self, image_id: str, root: dict[str, Any]) -> dict[str, Any]:
        """The root volume's mapping: the fields the program set, the others from the
        image's own mapping, as AWS fills them in (EC2 User Guide, "Block device mappings":
        a launch mapping overrides the AMI's for the fields it gives). moto would instead
        put its fixed defaults (gp2, not deleted on termination) in their place."""
        (image,) = self.ec2.describe_images(ImageIds=[image_id])["Images"]
        device = image["RootDeviceName"]
        from_image = next(
            m.get("Ebs", {}) for m in image["BlockDeviceMappings"] if m["DeviceName"] == device
        )
        keep = ("VolumeSize", "VolumeType", "DeleteOnTermination", "Encrypted")
        ebs = {key: value for key, value in from_image.items() if key in keep}
        ebs |= _given(
            root,
            {
                "volumeSize": ("VolumeSize", int),
                "volumeType": ("VolumeType", str),
                "encrypted": ("Encrypted", bool),
                "deleteOnTermination": ("DeleteOnTermination", bool),
            },
        )
        return {"DeviceName": device, "Ebs": ebs}

    def _eip(self, name: str, inputs: dict[str, Any]) -> tuple[str, State]:
        address = self.ec2.allocate_address(
            TagSpecifications=_tag_spec("elastic-ip", inputs),
            **_given(inputs, {"domain": ("Domain", str)}),
        )
        if inputs.get("instance"):
            self.ec2.associate_address(
                AllocationId=address["AllocationId"], InstanceId=inputs["instance"]
            )
        public_ip = address["PublicIp"]
        return address["AllocationId"], {
            "allocationId": address["AllocationId"],
            "publicIp": public_ip,
            "publicDns": f"ec2-{public_ip.replace('.', '-')}.compute-1.amazonaws.com",
        }

    # -- S3 -------------------------------------------------------------------------------
    def _bucket(self, name: str, inputs: dict[str, Any]) -> tuple[str, State]:
        bucket = inputs.get("bucket") or _physical(name, inputs.get("bucketPrefix"))
        self.s3.create_bucket(Bucket=bucket)
        if inputs.get("tags"):
            self.s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": _tags(inputs)})
        return bucket, {"bucket": bucket, "arn": f"arn:aws:s3:::{bucket}"}

    def _public_access_block(self, name: str, inputs: dict[str, Any]) -> tuple[str, State]:
        keys = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")
        # A field left out of the call is off, in AWS and in moto alike.
        config = _given(inputs, {key[0].lower() + key[1:]: (key, bool) for key in keys})
        self.s3.put_public_access_block(
            Bucket=inputs["bucket"], PublicAccessBlockConfiguration=config
        )
        return inputs["bucket"], {}

    def _encryption(self, name: str, inputs: dict[str, Any]) -> tuple[str, State]:
        rules = []
        for rule in inputs["rules"]:
            default = rule["applyServerSideEncryptionByDefault"]
            by_default = {"SSEAlgorithm": default["sseAlgorithm"]}
            if default.get("kmsMasterKeyId"):
                by_default["KMSMasterKeyID"] = default["kmsMasterKeyId"]
            rules.append(
                {
                    "ApplyServerSideEncryptionByDefault": by_default,
                    **_given(rule, {"bucketKeyEnabled": ("BucketKeyEnabled", bool)}),
                }
            )
        self.s3.put_bucket_encryption(
            Bucket=inputs["bucket"], ServerSideEncryptionConfiguration={"Rules": rules}
        )
        return inputs["bucket"], {}

    def _versioning(self, name: str, inputs: dict[str, Any]) -> tuple[str, State]:
        status = inputs["versioningConfiguration"]["status"]
        self.s3.put_bucket_versioning(
            Bucket=inputs["bucket"], VersioningConfiguration={"Status": status}
        )
        return inputs["bucket"], {}

    def _ownership(self, name: str, inputs: dict[str, Any]) -> tuple[str, State]:
        ownership = inputs["rule"]["objectOwnership"]
        self.s3.put_bucket_ownership_controls(
            Bucket=inputs["bucket"],
            OwnershipControls={"Rules": [{"ObjectOwnership": ownership}]},
        )
        return inputs["bucket"], {}

    def _bucket_policy(self, name: str, inputs: dict[str, Any]) -> tuple[str, State]:
        self.s3.put_bucket_policy(Bucket=inputs["bucket"], Policy=inputs["policy"])
        return inputs["bucket"], {}

    # -- IAM ------------------------------------------------------------------------------
    def _role(self, name: str, inputs: dict[str, Any]) -> tuple[str, State]:
        role_name = inputs.get("name") or _physical(name, inputs.get("namePrefix"))
        role = self.iam.create_role(
            RoleName=role_name,
            AssumeRolePolicyDocument=inputs["assumeRolePolicy"],
            Tags=_tags(inputs),
            **_given(inputs, {"description": ("Description", str)}),
        )["Role"]
        return role_name, {"name": role_name, "arn": role["Arn"], "uniqueId": role["RoleId"]}

    def _role_policy(self, name: str, inputs: dict[str, Any]) -> tuple[str, State]:
        policy_name = inputs.get("name") or _physical(name)
        self.iam.put_role_policy(
            RoleName=inputs["role"], PolicyName=policy_name, PolicyDocument=inputs["policy"]
        )
        return f"{inputs['role']}:{policy_name}", {"name": policy_name}

    def _instance_profile(self, name: str, inputs: dict[str, Any]) -> tuple[str, State]:
        profile_name = inputs.get("name") or _physical(name)
        profile = self.iam.create_instance_profile(
            InstanceProfileName=profile_name, Tags=_tags(inputs)
        )["InstanceProfile"]
        if inputs.get("role"):
            self.iam.add_role_to_instance_profile(
                InstanceProfileName=profile_name, RoleName=inputs["role"]
            )
        return profile_name, {"name": profile_name, "arn": profile["Arn"]}

    # -- RDS ------------------------------------------------------------------------------
    def _db_subnet_group(self, name: str, inputs: dict[str, Any]) -> tuple[str, State]:
        group_name = inputs.get("name") or _physical(name)
        group = self.rds.create_db_subnet_group(
            DBSubnetGroupName=group_name,
            DBSubnetGroupDescription=inputs.get("description", "Managed by Pulumi"),
            SubnetIds=inputs["subnetIds"],
            Tags=_tags(inputs),
        )["DBSubnetGroup"]
        return group_name, {"name": group_name, "arn": group["DBSubnetGroupArn"]}

    def _db_instance(self, name: str, inputs: dict[str, Any]) -> tuple[str, State]:
        if inputs.get("password"):
            raise ValueError("the mocks refuse a literal master password: use the managed one")
        identifier = inputs.get("identifier") or _physical(name, inputs.get("identifierPrefix"))
        # For the other unset fields moto's defaults are AWS's (RDS API Reference,
        # CreateDBInstance): not encrypted, backups kept 1 day, no deletion protection, tags
        # not copied to snapshots, minor upgrades on, the engine's port. The engine version
        # is the exception: AWS picks a current one, moto an old one; neither is the 16 asked.
        optional = _given(
            inputs,
            {
                "engineVersion": ("EngineVersion", str),
                "storageType": ("StorageType", str),
                "storageEncrypted": ("StorageEncrypted", bool),
                "manageMasterUserPassword": ("ManageMasterUserPassword", bool),
                "port": ("Port", int),
                "publiclyAccessible": ("PubliclyAccessible", bool),
                "backupRetentionPeriod": ("BackupRetentionPeriod", int),
                "copyTagsToSnapshot": ("CopyTagsToSnapshot", bool),
                "autoMinorVersionUpgrade": ("AutoMinorVersionUpgrade", bool),
                "deletionProtection": ("DeletionProtection", bool),
            },
        )
        # CreateDBInstance, StorageType: "Default: io1, if the Iops parameter is specified.
        # Otherwise, gp3." moto's is gp2.
        optional.setdefault("StorageType", "io1" if inputs.get("iops") else "gp3")
        # CreateDBInstance, PubliclyAccessible: "If DBSubnetGroup is specified,
        # PubliclyAccessible defaults to false unless the value of DBSubnetGroup is default, in
        # which case PubliclyAccessible defaults to true" (true without a group, non-Aurora).
        # moto leaves it unset. The program's own group makes AWS's default private, so the
        # policy tests also check that the program says so itself.
        optional.setdefault(
            "PubliclyAccessible", inputs.get("dbSubnetGroupName", "default") == "default"
        )
        db = self.rds.create_db_instance(
            DBInstanceIdentifier=identifier,
            Engine=inputs["engine"],
            DBInstanceClass=inputs["instanceClass"],
            AllocatedStorage=int(inputs["allocatedStorage"]),
            DBName=inputs["dbName"],
            MasterUsername=inputs["username"],
            DBSubnetGroupName=inputs["dbSubnetGroupName"],
            VpcSecurityGroupIds=inputs["vpcSecurityGroupIds"],
            Tags=_tags(inputs),
            **optional,
        )["DBInstance"]
        endpoint = db.get("Endpoint", {})
        secret = db.get("MasterUserSecret", {})
        return identifier, {
            "identifier": identifier,
            "arn": db["DBInstanceArn"],
            "address": endpoint.get("Address", ""),
            "endpoint": f"{endpoint.get('Address', '')}:{endpoint.get('Port', 5432)}",
            "masterUserSecrets": (
                [{"secretArn": secret["SecretArn"], "secretStatus": secret.get("SecretStatus", "")}]
                if secret
                else []
            ),
        }


def policy_document(text: str | dict[str, Any]) -> dict[str, Any]:
    """IAM documents come back from moto either as text or already decoded."""
    return json.loads(text) if isinstance(text, str) else text
