#!/usr/bin/python3
"""Second S3 client for s3_store_test: boto3 (Debian python3-boto3) reads what marmot wrote and
writes an object for marmot to read, against the same s3rver.

  s3_check.py ENDPOINT BUCKET PREFIX list-get DIR   one line per object under PREFIX/:
                                                    "<name> <size> <sha256> <etag>", each
                                                    downloaded into DIR/<name> first
  s3_check.py ENDPOINT BUCKET PREFIX put NAME SIZE  uploads SIZE random bytes as PREFIX/NAME
                                                    (multipart above 5 MiB), prints their sha256
  s3_check.py ENDPOINT BUCKET - moto-setup          on a fresh moto_server (which checks SigV4
                                                    signatures for IAM keys): makes a user allowed
                                                    s3:*, its access key and BUCKET; prints
                                                    "<access key> <secret>"
"""
import hashlib
import json
import os
import sys

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config


def moto_setup(endpoint, bucket):
    # The first requests are let through unsigned (INITIAL_NO_AUTH_ACTION_COUNT); the bucket is
    # made with the new key, so it already proves the key works.
    iam = boto3.client("iam", endpoint_url="http://" + endpoint, aws_access_key_id="setup",
                       aws_secret_access_key="setup", region_name="us-east-1")
    iam.create_user(UserName="marmot")
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    iam.put_user_policy(UserName="marmot", PolicyName="s3", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName="marmot")["AccessKey"]
    s3 = boto3.client("s3", endpoint_url="http://" + endpoint, aws_access_key_id=key["AccessKeyId"],
                      aws_secret_access_key=key["SecretAccessKey"], region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    print(key["AccessKeyId"], key["SecretAccessKey"])


def main():
    endpoint, bucket, prefix, mode = sys.argv[1:5]
    if mode == "moto-setup":
        moto_setup(endpoint, bucket)
        return
    s3 = boto3.client(
        "s3",
        endpoint_url="http://" + endpoint,
        aws_access_key_id="S3RVER",
        aws_secret_access_key="S3RVER",
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"),
    )
    if mode == "list-get":
        out_dir = sys.argv[5]
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/")
        for page in pages:
            for obj in page.get("Contents", []):
                name = obj["Key"][len(prefix) + 1:]
                path = os.path.join(out_dir, name)
                s3.download_file(bucket, obj["Key"], path)
                digest = hashlib.sha256()
                with open(path, "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        digest.update(chunk)
                print(name, obj["Size"], digest.hexdigest(), obj["ETag"].strip('"'))
    elif mode == "put":
        name, size = sys.argv[5], int(sys.argv[6])
        data = os.urandom(size)
        path = os.path.join(os.environ.get("TMPDIR", "/tmp"), "s3_check_%d" % os.getpid())
        with open(path, "wb") as f:
            f.write(data)
        try:
            config = TransferConfig(multipart_threshold=5 << 20, multipart_chunksize=5 << 20)
            s3.upload_file(path, bucket, prefix + "/" + name, Config=config)
        finally:
            os.unlink(path)
        print(hashlib.sha256(data).hexdigest())
    else:
        sys.exit("unknown mode " + mode)


if __name__ == "__main__":
    main()
