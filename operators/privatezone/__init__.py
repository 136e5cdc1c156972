"""The PrivateZone operator: private DNS zones answering inside their VPCs."""
