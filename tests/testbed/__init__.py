"""Test bed: the real parts (Docker engine, S3 server, Kubernetes control plane) tests run against."""
