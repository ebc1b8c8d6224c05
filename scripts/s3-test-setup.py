"""Prepares a moto S3 server for costagg's S3 tests: a bucket, and an IAM user whose key may
read it (the server is started with INITIAL_NO_AUTH_ACTION_COUNT=4, so these four calls are the
last unsigned ones it accepts). Prints the key id and secret.

Usage: python s3-test-setup.py ENDPOINT BUCKET
"""
import json, sys, boto3
endpoint, bucket = sys.argv[1], sys.argv[2]
kw = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="setup", aws_secret_access_key="setup")
boto3.client("s3", **kw).create_bucket(Bucket=bucket)
iam = boto3.client("iam", **kw)
iam.create_user(UserName="costagg")
iam.put_user_policy(UserName="costagg", PolicyName="s3", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
key = iam.create_access_key(UserName="costagg")["AccessKey"]
print(key["AccessKeyId"], key["SecretAccessKey"])
