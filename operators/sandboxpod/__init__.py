"""The SandboxPod operator: a SandboxPod in, a running sandbox out."""
