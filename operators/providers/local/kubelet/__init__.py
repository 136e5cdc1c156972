"""The part of a kubelet that the local provider needs: what a cloud instance (ECI) does by
itself. Pure decisions (back-off, probe accounting, init progression, what is reported)
live in their own modules; `worker` applies them to one pod through the narrow runtime
protocol of `runtime.py`, which the provider implements on podman (local/runtime.py) and
hands to each worker with the event sink it was given."""
