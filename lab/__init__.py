"""A local AWS lab: simulated accounts that speak the real AWS wire protocols.

moto serves the services it already emulates well (EC2, IAM, DynamoDB, Organizations,
CloudWatch, CloudFormation, SSM documents and parameters); the lab adds, in front of it,
what moto lacks or gets wrong for DRS agent deployment (STS trust, the SSM fleet and Run
Command, agent installs, DRS), plus fault injection and a control API under ``/_lab/``.
"""
