"""Policy tests of the box, its network and its identity, checked in moto's state."""

from __future__ import annotations

import ipaddress

import boto3
import pytest

from tests.infra.conftest import REGION, Deploy
from tests.infra.moto_mocks import policy_document

NEWEST_CANONICAL_NOBLE_AMD64 = "ami-04b4f1a9cf54c11d0"


def ec2():
    return boto3.client("ec2", region_name=REGION)


def box_instance(name: str = "mlops-zoomcamp") -> dict:
    """Find the box the way the fab tasks do: by its tags, never by a saved id."""
    reservations = ec2().describe_instances(
        Filters=[
            {"Name": "tag:Project", "Values": ["mlops-box"]},
            {"Name": "tag:Stack", "Values": ["dev"]},
            {"Name": "tag:Name", "Values": [name]},
        ]
    )["Reservations"]
    instances = [i for r in reservations for i in r["Instances"]]
    assert len(instances) == 1
    return instances[0]


def ingress_of(group_id: str) -> list[dict]:
    return ec2().describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]["IpPermissions"]


def test_ssh_is_open_only_to_the_allowed_networks(deploy: Deploy) -> None:
    deploy(sshAllowedCidrs=["203.0.113.7/32", "2001:db8::/64"])
    group_ids = [g["GroupId"] for g in box_instance()["SecurityGroups"]]
    assert len(group_ids) == 1
    (permission,) = ingress_of(group_ids[0])
    assert (permission["IpProtocol"], permission["FromPort"], permission["ToPort"]) == (
        "tcp",
        22,
        22,
    )
    assert [r["CidrIp"] for r in permission["IpRanges"]] == ["203.0.113.7/32"]
    assert [r["CidrIpv6"] for r in permission["Ipv6Ranges"]] == ["2001:db8::/64"]


def test_no_security_group_admits_the_whole_internet(deploy: Deploy) -> None:
    deploy(mlflowBackend="rds", dbDeletionProtection=False)
    anywhere = {ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")}
    for group in ec2().describe_security_groups()["SecurityGroups"]:
        for permission in group["IpPermissions"]:
            cidrs = [r["CidrIp"] for r in permission.get("IpRanges", [])]
            cidrs += [r["CidrIpv6"] for r in permission.get("Ipv6Ranges", [])]
            assert not anywhere & {ipaddress.ip_network(c) for c in cidrs}, group["GroupId"]


def test_ssh_from_anywhere_only_with_the_opt_in(deploy: Deploy) -> None:
    deploy(sshAllowedCidrs=["0.0.0.0/0"], allowSshFromAnywhere=True)
    (group,) = box_instance()["SecurityGroups"]
    (permission,) = ingress_of(group["GroupId"])
    assert [r["CidrIp"] for r in permission["IpRanges"]] == ["0.0.0.0/0"]


def ports_open(group_id: str) -> dict[int, list[str]]:
    """Each inbound port of the group, with the networks it is open to."""
    return {
        p["FromPort"]: [r["CidrIp"] for r in p.get("IpRanges", [])]
        + [r["CidrIpv6"] for r in p.get("Ipv6Ranges", [])]
        for p in ingress_of(group_id)
    }


def test_the_front_door_port_is_closed_by_default(deploy: Deploy) -> None:
    deploy()
    (group,) = box_instance()["SecurityGroups"]
    assert ports_open(group["GroupId"]) == {22: ["203.0.113.7/32"]}


def test_https_from_one_address_is_one_rule_for_443(deploy: Deploy) -> None:
    deployment = deploy(httpsAllowedCidrs=["198.51.100.7/32"])
    (group,) = box_instance()["SecurityGroups"]
    assert ports_open(group["GroupId"]) == {22: ["203.0.113.7/32"], 443: ["198.51.100.7/32"]}
    https = [
        d
        for d in deployment.declared("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
        if d.inputs.get("fromPort") == 443
    ]
    assert len(https) == 1
    assert (https[0].inputs["toPort"], https[0].inputs["ipProtocol"]) == (443, "tcp")


def test_https_from_anywhere_only_with_the_opt_in(deploy: Deploy) -> None:
    deploy(httpsAllowedCidrs=["0.0.0.0/0"], allowHttpsFromAnywhere=True)
    (group,) = box_instance()["SecurityGroups"]
    assert ports_open(group["GroupId"])[443] == ["0.0.0.0/0"]


def test_the_box_can_reach_out(deploy: Deploy) -> None:
    deploy()
    (group,) = box_instance()["SecurityGroups"]
    egress = ec2().describe_security_groups(GroupIds=[group["GroupId"]])["SecurityGroups"][0][
        "IpPermissionsEgress"
    ]
    cidrs = {r["CidrIp"] for p in egress for r in p.get("IpRanges", [])}
    cidrs |= {r["CidrIpv6"] for p in egress for r in p.get("Ipv6Ranges", [])}
    assert cidrs == {"0.0.0.0/0", "::/0"}


def test_instance_requires_imdsv2_and_stops_on_shutdown(deploy: Deploy) -> None:
    deployment = deploy()
    instance = box_instance()
    options = instance["MetadataOptions"]
    assert options["HttpTokens"] == "required"
    assert options["HttpPutResponseHopLimit"] == 1
    assert options["InstanceMetadataTags"] == "enabled"
    behaviour = ec2().describe_instance_attribute(
        InstanceId=instance["InstanceId"], Attribute="instanceInitiatedShutdownBehavior"
    )
    assert behaviour["InstanceInitiatedShutdownBehavior"]["Value"] == "stop"
    assert instance["InstanceType"] == "t3.xlarge"
    # AWS's defaults give "stop" and a hop limit of 1 today, but they depend on the image
    # (instance-store images terminate; ImdsSupport v2.0 images get a hop limit of 2), so
    # the program must state them rather than inherit them.
    (declared,) = deployment.declared("aws:ec2/instance:Instance")
    assert declared.inputs["instanceInitiatedShutdownBehavior"] == "stop"
    assert declared.inputs["metadataOptions"] == {
        "httpEndpoint": "enabled",
        "httpTokens": "required",
        "httpPutResponseHopLimit": 1,
        "instanceMetadataTags": "enabled",
    }


def test_root_volume_is_encrypted_gp3_of_the_configured_size(deploy: Deploy) -> None:
    deployment = deploy(volumeSizeGb=50)
    instance = box_instance()
    (mapping,) = instance["BlockDeviceMappings"]
    assert mapping["Ebs"]["DeleteOnTermination"] is True
    volume = ec2().describe_volumes(VolumeIds=[mapping["Ebs"]["VolumeId"]])["Volumes"][0]
    assert (volume["Encrypted"], volume["VolumeType"], volume["Size"]) == (True, "gp3", 50)
    # Canonical's gp3 images already map a gp3 root volume deleted with the instance; the
    # program states both so that another image (the `ami` setting) cannot change them.
    (declared,) = deployment.declared("aws:ec2/instance:Instance")
    root = declared.inputs["rootBlockDevice"]
    assert (root["volumeType"], root["encrypted"], root["deleteOnTermination"]) == (
        "gp3",
        True,
        True,
    )


def test_image_is_canonicals_newest_ubuntu_2404_amd64(deploy: Deploy) -> None:
    deploy()
    assert box_instance()["ImageId"] == NEWEST_CANONICAL_NOBLE_AMD64


def test_image_override_is_used(deploy: Deploy) -> None:
    deploy(ami="ami-0a0e5d9c7acc336f1")
    assert box_instance()["ImageId"] == "ami-0a0e5d9c7acc336f1"


def test_key_pair_holds_the_users_public_key(deploy: Deploy) -> None:
    deployment = deploy()
    (key,) = ec2().describe_key_pairs(KeyNames=[box_instance()["KeyName"]])["KeyPairs"]
    assert key["KeyName"].startswith("mlops-zoomcamp-")
    (declared,) = deployment.declared("aws:ec2/keyPair:KeyPair")
    assert declared.inputs["publicKey"].startswith("ssh-ed25519 ")


def test_box_role_reaches_only_its_bucket(deploy: Deploy) -> None:
    deployment = deploy()
    bucket = deployment.exports["artifactBucket"]
    iam = boto3.client("iam", region_name=REGION)
    profile_arn = box_instance()["IamInstanceProfile"]["Arn"]
    profile = next(
        p for p in iam.list_instance_profiles()["InstanceProfiles"] if p["Arn"] == profile_arn
    )
    (role,) = profile["Roles"]
    trust = policy_document(role["AssumeRolePolicyDocument"])
    assert trust["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
    assert iam.list_attached_role_policies(RoleName=role["RoleName"])["AttachedPolicies"] == []
    (policy_name,) = iam.list_role_policies(RoleName=role["RoleName"])["PolicyNames"]
    document = policy_document(
        iam.get_role_policy(RoleName=role["RoleName"], PolicyName=policy_name)["PolicyDocument"]
    )
    resources = {
        resource
        for statement in document["Statement"]
        for resource in (
            [statement["Resource"]]
            if isinstance(statement["Resource"], str)
            else statement["Resource"]
        )
    }
    assert resources == {f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"}
    actions = {a for s in document["Statement"] for a in s["Action"]}
    assert not any(a.endswith("*") for a in actions)
    assert all(s["Effect"] == "Allow" for s in document["Statement"])


def test_elastic_ip_is_associated_and_exported(deploy: Deploy) -> None:
    deployment = deploy(elasticIp=True)
    (address,) = ec2().describe_addresses()["Addresses"]
    assert address["InstanceId"] == box_instance()["InstanceId"]
    assert deployment.exports["publicIp"] == address["PublicIp"]


def test_no_elastic_ip_by_default(deploy: Deploy) -> None:
    deploy()
    assert ec2().describe_addresses()["Addresses"] == []


@pytest.mark.parametrize("backend", ["sqlite", "rds"])
def test_outputs(deploy: Deploy, backend: str) -> None:
    exports = deploy(mlflowBackend=backend).exports
    instance = box_instance()
    assert exports["instanceId"] == instance["InstanceId"]
    assert exports["publicIp"] == instance["PublicIpAddress"]
    assert exports["publicDns"] == instance["PublicDnsName"]
    assert (exports["boxName"], exports["sshUser"], exports["region"]) == (
        "mlops-zoomcamp",
        "ubuntu",
        REGION,
    )
    assert exports["mlflowBackend"] == backend
    assert ("dbEndpoint" in exports, "dbSecretArn" in exports) == (backend == "rds",) * 2
