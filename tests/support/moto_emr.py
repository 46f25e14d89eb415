"""Sets up EMR and IAM in moto for the tests, through boto3 (installed with moto by
scripts/install-moto.sh): reads a JSON spec on standard input, prints the IDs of the clusters it made.

    {"endpoint": "http://127.0.0.1:PORT",
     "roles": ["EMR_EC2_Lake"],
     "instance_profiles": {"EMR_EC2_Lake": "EMR_EC2_Lake"},          # profile name -> its role ("" for none)
     "security_configurations": {"lake-sc": "<document text>"},      # created, or replaced when they exist
     "clusters": {"lake": {"security_configuration": "lake-sc", "instance_profile": "EMR_EC2_Lake"}}}

prints {"clusters": {"lake": "j-..."}}. Every part is optional; a cluster without
"security_configuration" has none.
"""

import json
import sys

import boto3


def main():
    spec = json.load(sys.stdin)
    settings = dict(
        endpoint_url=spec["endpoint"],
        region_name="us-east-1",
        aws_access_key_id="AKIAEMRFSROLEMAPTEST",
        aws_secret_access_key="base-secret-access-key-for-tests",
    )
    emr = boto3.client("emr", **settings)
    iam = boto3.client("iam", **settings)
    trust = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
    for role in spec.get("roles", []):
        iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust)
    for profile, role in spec.get("instance_profiles", {}).items():
        iam.create_instance_profile(InstanceProfileName=profile)
        if role:
            iam.add_role_to_instance_profile(InstanceProfileName=profile, RoleName=role)
    for name, document in spec.get("security_configurations", {}).items():
        try:
            emr.delete_security_configuration(Name=name)
        except emr.exceptions.InvalidRequestException:
            pass  # there was none of that name
        emr.create_security_configuration(Name=name, SecurityConfiguration=document)
    clusters = {}
    for name, cluster in spec.get("clusters", {}).items():
        extra = {}
        if cluster.get("security_configuration"):
            extra["SecurityConfiguration"] = cluster["security_configuration"]
        made = emr.run_job_flow(
            Name=name,
            ReleaseLabel="emr-7.0.0",
            Instances={"MasterInstanceType": "m5.xlarge", "InstanceCount": 1, "KeepJobFlowAliveWhenNoSteps": True},
            JobFlowRole=cluster["instance_profile"],
            ServiceRole="EMR_DefaultRole",
            **extra,
        )
        clusters[name] = made["JobFlowId"]
    json.dump({"clusters": clusters}, sys.stdout)


if __name__ == "__main__":
    main()
