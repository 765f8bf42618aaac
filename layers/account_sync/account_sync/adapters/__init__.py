"""Adapters: the only modules that import boto3, pynamodb or simple-salesforce."""
