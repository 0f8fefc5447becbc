"""Run the lab in a child process on a free port, as tests and benchmarks need it."""

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import boto3

REPO_ROOT = Path(__file__).resolve().parent.parent
OPERATOR_KEYS = {"aws_access_key_id": "lab-operator", "aws_secret_access_key": "lab-operator-secret"}


class RunningLab:
    """A lab child process: its URL, its control API, and boto3 clients pointed at it."""

    def __init__(self, scenario, startup_timeout=120):
        self.scenario = scenario
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lab", "serve", "--scenario", str(scenario), "--port", "0"],
            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        line = self.process.stdout.readline()
        if not line.startswith("lab ready: "):
            self.process.kill()
            raise RuntimeError(f"the lab did not start for {scenario}: {line}{self.process.stderr.read()}")
        self.url = line.split("lab ready: ", 1)[1].strip()
        self.time_scale = None

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()

    def control(self, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}/_lab/{path}", data=data, method="GET" if body is None else "POST")
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())

    def stats(self):
        return self.control("stats")

    def reset(self):
        """The scenario's state again, at the time scale pinned with ``pin_time_scale`` (if any)."""
        summary = self.control("reset", {})
        if self.time_scale is not None:
            self.control("clock", {"time_scale": self.time_scale})
        return summary

    def pin_time_scale(self, time_scale):
        """Run at ``time_scale`` from now on, also after a reset."""
        self.time_scale = time_scale
        self.control("clock", {"time_scale": time_scale})

    def client(self, service, region="us-east-1", credentials=None, **config):
        keys = credentials or OPERATOR_KEYS
        return boto3.client(service, endpoint_url=self.url, region_name=region, **keys, **config)

    def assume(self, role_arn, external_id=None, region="us-east-1"):
        """Credentials (as boto3 client keyword arguments) for a role in the lab."""
        kwargs = {"RoleArn": role_arn, "RoleSessionName": "lab-tests"}
        if external_id:
            kwargs["ExternalId"] = external_id
        issued = self.client("sts", region).assume_role(**kwargs)["Credentials"]
        return {
            "aws_access_key_id": issued["AccessKeyId"],
            "aws_secret_access_key": issued["SecretAccessKey"],
            "aws_session_token": issued["SessionToken"],
        }

    def environment(self, **extra):
        """Environment for a child process (ansible-playbook, the AWS CLI) that talks to this lab."""
        env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
        env.update({
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": OPERATOR_KEYS["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": OPERATOR_KEYS["aws_secret_access_key"],
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
        })
        env.update(extra)
        return env
