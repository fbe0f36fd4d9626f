#!/usr/bin/env python3
"""Create the `profiles` table (with a NEW_AND_OLD_IMAGES stream) if it is
missing, then insert N profiles, update every third and delete every fifth.

    python make_changes.py [N]      # default 100; endpoint from DYNAMODB_ENDPOINT
"""
import os
import sys

import boto3

endpoint = os.environ.get("DYNAMODB_ENDPOINT", "http://127.0.0.1:15000")
n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
ddb = boto3.client(
    "dynamodb",
    endpoint_url=endpoint,
    region_name=os.environ.get("AWS_REGION", "us-east-1"),
    aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "test"),
    aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "test"),
)
if "profiles" not in ddb.list_tables()["TableNames"]:
    ddb.create_table(
        TableName="profiles",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    ddb.get_waiter("table_exists").wait(TableName="profiles")

for i in range(n):
    ddb.put_item(
        TableName="profiles",
        Item={
            "id": {"S": f"u-{i:04d}"},
            "name": {"S": f"User {i}"},
            "email": {"S": f"user{i}@example.com"},
            "plan": {"S": ["free", "pro", "team"][i % 3]},
            "logins": {"N": "0"},
        },
    )
for i in range(0, n, 3):
    ddb.update_item(
        TableName="profiles",
        Key={"id": {"S": f"u-{i:04d}"}},
        UpdateExpression="SET logins = logins + :one, #plan = :p",
        ExpressionAttributeNames={"#plan": "plan"},
        ExpressionAttributeValues={":one": {"N": "1"}, ":p": {"S": "pro"}},
    )
for i in range(0, n, 5):
    ddb.delete_item(TableName="profiles", Key={"id": {"S": f"u-{i:04d}"}})
print(f"{n} inserts, {len(range(0, n, 3))} updates, {len(range(0, n, 5))} deletes on profiles")
