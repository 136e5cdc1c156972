"""The aliyun provider: sandboxes as Alibaba Cloud Elastic Container Instances (ECI),
called through the classic Aliyun SDKs."""
