#!/usr/bin/env python3
"""The local AWS stack: moto server on 127.0.0.1, with the resources that template.yaml declares.

    localstack.py start  --port 5055 --state .local          # start moto, wait until it answers
    localstack.py create --endpoint URL --prefix NAME [--out F] [--param K=V ...]
    localstack.py stop   --state .local                      # stop it, leaving no process behind

`create` reads template.yaml itself, so there is no second hand-written list of resources: every
AWS::Kinesis::Stream, AWS::DynamoDB::Table, AWS::SQS::Queue, AWS::S3::Bucket and AWS::KMS::Key is created with the
properties the template gives it (key schema, stream view, TTL, point-in-time recovery, retention,
lifecycle), named `<prefix>-<LogicalId>`. It then resolves each function's environment variables
(`!Ref`, `!GetAtt`, `!Sub`, parameters) against those names and prints one JSON document:

    {"endpoint": ..., "region": ..., "resources": {LogicalId: {"name", "arn", "url"?, "stream_arn"?}},
     "functions": {LogicalId: {VAR: value}},            # the shape `sam local invoke --env-vars` takes
     "event_sources": {LogicalId: [{"type", "source": LogicalId, "batch_size", ...}]},
     "not_emulated": [LogicalId, ...]}

With --out, it also writes <out>.sam-env.json (for `sam local invoke --env-vars`) and <LogicalId>.env
beside it (for `cargo lambda watch --env-file`).

Local differences, applied to the functions' environment and listed in the output:
  - the pseudonymization key comes from PSEUDONYM_KEY (an environment variable) instead of SSM;
  - parameters can be overridden with --param (the demo keeps historical data with a long retention).
"""
import argparse
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import boto3
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
LOCAL_KEY = "local-only-pseudonymization-key-not-a-secret-0001"


class CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation short-form tags (!Ref, !GetAtt, !Sub, ...) as their long forms."""


def _tag(loader, suffix, node):
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


CfnLoader.add_multi_constructor("!", _tag)


def load_template(path):
    with open(path) as f:
        return yaml.load(f, Loader=CfnLoader)


def client(service, endpoint):
    return boto3.client(service, endpoint_url=endpoint, region_name=REGION,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


NAMED_ONLY = {"AWS::KinesisFirehose::DeliveryStream": "firehose", "AWS::Glue::Database": "glue",
              "AWS::Athena::WorkGroup": "athena"}


class Stack:
    def __init__(self, template, endpoint, prefix, params):
        self.t = template
        self.endpoint = endpoint
        self.prefix = prefix
        self.params = {k: str(v.get("Default", "")) for k, v in template.get("Parameters", {}).items()}
        self.params.update(params)
        self.resources = {}
        self.not_emulated = []

    # --- intrinsic functions -------------------------------------------------------------------
    def ref(self, name):
        if name in self.params:
            return self.params[name]
        pseudo = {"AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::Partition": "aws",
                  "AWS::StackName": self.prefix, "AWS::URLSuffix": "amazonaws.com"}
        if name in pseudo:
            return pseudo[name]
        r = self.resources.get(name)
        if r is None:
            raise KeyError(f"!Ref {name}: not a parameter or an emulated resource")
        return r.get("url") or r["name"]

    def get_att(self, name, attr):
        r = self.resources.get(name)
        if r is None:
            raise KeyError(f"!GetAtt {name}.{attr}: not an emulated resource")
        key = {"Arn": "arn", "StreamArn": "stream_arn", "QueueName": "name", "QueueUrl": "url"}.get(attr)
        if key is None or key not in r:
            raise KeyError(f"!GetAtt {name}.{attr}: unsupported attribute")
        return r[key]

    def resolve(self, v):
        if isinstance(v, dict) and len(v) == 1:
            (k, arg), = v.items()
            if k == "Ref":
                return self.ref(arg)
            if k == "Fn::GetAtt":
                return self.get_att(arg[0], arg[1])
            if k == "Fn::Sub":
                text, extra = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
                out, i = "", 0
                while (j := text.find("${", i)) >= 0:
                    end = text.index("}", j)
                    expr = text[j + 2:end]
                    if expr in extra:
                        val = self.resolve(extra[expr])
                    elif "." in expr:
                        val = self.get_att(*expr.split(".", 1))
                    else:
                        val = self.ref(expr)
                    out, i = out + text[i:j] + str(val), end + 1
                return out + text[i:]
        if isinstance(v, dict):
            return {k: self.resolve(x) for k, x in v.items()}
        if isinstance(v, list):
            return [self.resolve(x) for x in v]
        return v

    # --- resources ---------------------------------------------------------------------------------
    def name(self, logical_id):
        return f"{self.prefix}-{logical_id}"

    def create_all(self):
        creators = {
            "AWS::Kinesis::Stream": self.kinesis_stream,
            "AWS::DynamoDB::Table": self.dynamodb_table,
            "AWS::SQS::Queue": self.sqs_queue,
            "AWS::S3::Bucket": self.s3_bucket,
            "AWS::KMS::Key": self.kms_key,
        }
        for logical_id, res in self.t["Resources"].items():
            create = creators.get(res["Type"])
            if create is None:
                self.not_emulated.append(logical_id)
                # Firehose, Glue and Athena do not run locally (`checkout-ai archive` writes the archive
                # and DuckDB reads it instead), but functions name them: names resolve, nothing is made.
                service = NAMED_ONLY.get(res["Type"])
                if service:
                    name = self.name(logical_id)
                    self.resources[logical_id] = {
                        "name": name, "emulated": False,
                        "arn": f"arn:aws:{service}:{REGION}:{ACCOUNT}:{name}"}
                continue
            self.resources[logical_id] = create(logical_id, self.resolve(res.get("Properties", {})))

    def kinesis_stream(self, lid, p):
        k = client("kinesis", self.endpoint)
        name = self.name(lid)
        k.create_stream(StreamName=name, ShardCount=int(p.get("ShardCount", 1)))
        k.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 100})
        arn = k.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
        return {"name": name, "arn": arn}

    def dynamodb_table(self, lid, p):
        d = client("dynamodb", self.endpoint)
        name = self.name(lid)
        args = {"TableName": name, "KeySchema": p["KeySchema"],
                "AttributeDefinitions": p["AttributeDefinitions"],
                "BillingMode": p.get("BillingMode", "PAY_PER_REQUEST")}
        for gsi_key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            if gsi_key in p:
                args[gsi_key] = p[gsi_key]
        if "StreamSpecification" in p:
            args["StreamSpecification"] = {"StreamEnabled": True,
                                           "StreamViewType": p["StreamSpecification"]["StreamViewType"]}
        desc = d.create_table(**args)["TableDescription"]
        ttl = p.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            d.update_time_to_live(TableName=name, TimeToLiveSpecification={
                "AttributeName": ttl["AttributeName"], "Enabled": True})
        pitr = p.get("PointInTimeRecoverySpecification", {})
        if pitr.get("PointInTimeRecoveryEnabled"):
            d.update_continuous_backups(TableName=name, PointInTimeRecoverySpecification={
                "PointInTimeRecoveryEnabled": True})
        out = {"name": name, "arn": desc["TableArn"]}
        if "LatestStreamArn" in desc:
            out["stream_arn"] = desc["LatestStreamArn"]
        return out

    def sqs_queue(self, lid, p):
        s = client("sqs", self.endpoint)
        name = self.name(lid)
        attrs = {}
        if p.get("FifoQueue"):
            name += ".fifo"
            attrs["FifoQueue"] = "true"
        if "RedrivePolicy" in p:
            attrs["RedrivePolicy"] = json.dumps(p["RedrivePolicy"])
        if "MessageRetentionPeriod" in p:
            attrs["MessageRetentionPeriod"] = str(p["MessageRetentionPeriod"])
        if "VisibilityTimeout" in p:
            attrs["VisibilityTimeout"] = str(p["VisibilityTimeout"])
        url = s.create_queue(QueueName=name, Attributes=attrs)["QueueUrl"]
        arn = s.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return {"name": name, "arn": arn, "url": url}

    def kms_key(self, lid, p):
        # A real key in moto, so that every `!GetAtt <key>.Arn` resolves; moto does not enforce it on
        # the tables and queues (their encryption settings are AWS-only and not passed on).
        k = client("kms", self.endpoint)
        meta = k.create_key(Description=p.get("Description", lid))["KeyMetadata"]
        if p.get("EnableKeyRotation"):
            k.enable_key_rotation(KeyId=meta["KeyId"])
        return {"name": meta["KeyId"], "arn": meta["Arn"]}

    def s3_bucket(self, lid, p):
        s3 = client("s3", self.endpoint)
        name = self.name(lid).lower()
        s3.create_bucket(Bucket=name)
        rules = p.get("LifecycleConfiguration", {}).get("Rules", [])
        if rules:
            s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={"Rules": [
                {"ID": r.get("Id", f"rule-{i}"), "Status": r.get("Status", "Enabled"),
                 "Filter": {"Prefix": r.get("Prefix", "")},
                 "Expiration": {"Days": int(r["ExpirationInDays"])}}
                for i, r in enumerate(rules) if "ExpirationInDays" in r]})
        return {"name": name, "arn": f"arn:aws:s3:::{name}"}

    # --- functions -----------------------------------------------------------------------------------
    def functions(self):
        glob = self.t.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
        envs, sources = {}, {}
        for lid, res in self.t["Resources"].items():
            if res["Type"] != "AWS::Serverless::Function":
                continue
            props = res["Properties"]
            env = {k: str(self.resolve(v)) for k, v in {**glob, **props.get("Environment", {}).get(
                "Variables", {})}.items()}
            if "PSEUDONYM_KEY_PARAMETER" in env:
                del env["PSEUDONYM_KEY_PARAMETER"]
                env["PSEUDONYM_KEY"] = os.environ.get("PSEUDONYM_KEY", LOCAL_KEY)
            envs[lid] = env
            for ev in props.get("Events", {}).values():
                ep = ev.get("Properties", {})
                if ev["Type"] in ("Kinesis", "DynamoDB"):
                    src = ep["Stream"]
                    src_id = (src.get("Fn::GetAtt") or [None])[0]
                    sources.setdefault(lid, []).append({
                        "type": ev["Type"], "source": src_id,
                        "batch_size": int(ep.get("BatchSize", 100)),
                        "starting_position": ep.get("StartingPosition"),
                        "function_response_types": ep.get("FunctionResponseTypes", []),
                        "maximum_retry_attempts": ep.get("MaximumRetryAttempts"),
                        "bisect_batch_on_function_error": ep.get("BisectBatchOnFunctionError", False),
                        "filter_criteria": ep.get("FilterCriteria"),
                        "on_failure": (ep.get("DestinationConfig", {}).get("OnFailure", {})
                                       .get("Destination", {}).get("Fn::GetAtt") or [None])[0],
                    })
        return envs, sources


def cmd_create(a):
    params = dict(p.split("=", 1) for p in a.param)
    stack = Stack(load_template(a.template), a.endpoint, a.prefix, params)
    stack.create_all()
    envs, sources = stack.functions()
    doc = {"endpoint": a.endpoint, "region": REGION, "prefix": a.prefix, "parameters": stack.params,
           "resources": stack.resources, "functions": envs, "event_sources": sources,
           "not_emulated": stack.not_emulated,
           "local_differences": ["PSEUDONYM_KEY from the environment instead of SSM"]}
    text = json.dumps(doc, indent=2)
    if a.out:
        pathlib.Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(a.out).write_text(text + "\n")
        # The same environment in the shape `sam local invoke --env-vars` takes.
        pathlib.Path(a.out).with_suffix(".sam-env.json").write_text(json.dumps(envs, indent=2) + "\n")
        # And per function as a dotenv file for `cargo lambda watch --env-file`, pointed at the local stack.
        for lid, env in envs.items():
            local = {"AWS_ENDPOINT_URL": a.endpoint, "AWS_REGION": REGION,
                     "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", **env}
            lines = [f"{k}={v}" for k, v in local.items()]
            (pathlib.Path(a.out).parent / f"{lid}.env").write_text("\n".join(lines) + "\n")
    else:
        print(text)


def wait_port(port, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.1)
    return False


def cmd_start(a):
    state = pathlib.Path(a.state)
    state.mkdir(parents=True, exist_ok=True)
    pidfile = state / "moto.pid"
    if pidfile.exists():
        cmd_stop(a)
    log = open(state / "moto.log", "w")
    # moto server with the transaction rollback fix (see infra/moto_server.py).
    launcher = pathlib.Path(__file__).resolve().with_name("moto_server.py")
    proc = subprocess.Popen([sys.executable, str(launcher), "-H", "127.0.0.1", "-p", str(a.port)], stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    pidfile.write_text(str(proc.pid))
    if not wait_port(a.port):
        cmd_stop(a)
        sys.exit(f"moto server did not start on 127.0.0.1:{a.port}; see {state / 'moto.log'}")
    print(f"moto server up on http://127.0.0.1:{a.port} (pid {proc.pid})")


def cmd_stop(a):
    pidfile = pathlib.Path(a.state) / "moto.pid"
    if not pidfile.exists():
        return
    pid = int(pidfile.read_text())
    try:
        os.killpg(pid, signal.SIGTERM)
        for _ in range(50):
            os.kill(pid, 0)
            time.sleep(0.1)
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    pidfile.unlink()
    print(f"moto server stopped (pid {pid})")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("create")
    c.add_argument("--endpoint", required=True)
    c.add_argument("--prefix", default="checkout-ai")
    c.add_argument("--template", default=str(ROOT / "template.yaml"))
    c.add_argument("--param", action="append", default=[], help="Parameter override, K=V")
    c.add_argument("--out")
    s = sub.add_parser("start")
    s.add_argument("--port", type=int, default=5055)
    s.add_argument("--state", default=str(ROOT / ".local"))
    t = sub.add_parser("stop")
    t.add_argument("--state", default=str(ROOT / ".local"))
    a = ap.parse_args()
    {"create": cmd_create, "start": cmd_start, "stop": cmd_stop}[a.cmd](a)


if __name__ == "__main__":
    main()
