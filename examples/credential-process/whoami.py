"""Prints the ARN that STS GetCallerIdentity reports for an AWS profile, through boto3.

    python whoami.py PROFILE [--endpoint-url URL]

With the `emrfs-alice` profile of `config` (its `credential_process` runs emrfs-rolemap), this is the
session of the assumed role: `arn:aws:sts::111122223333:assumed-role/finance/emrfs-alice`.
"""

import argparse

import boto3

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("profile", help="the profile of AWS_CONFIG_FILE (default ~/.aws/config)")
parser.add_argument("--endpoint-url", help="an STS endpoint instead of the region's (an emulator)")
args = parser.parse_args()

# An explicit profile: boto3 then ignores AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the
# environment, which stay there for the credential_process child (its base credentials).
sts = boto3.Session(profile_name=args.profile).client("sts", endpoint_url=args.endpoint_url)
print(sts.get_caller_identity()["Arn"])
