"""Local emulators of cloud APIs, for tests and demos of the cloud providers without an
account: real HTTP servers spoken to through the clouds' own SDKs."""
