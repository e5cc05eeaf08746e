"""Sluice: serverless MySQL to DynamoDB / MySQL migration."""

__version__ = "0.1.0"
