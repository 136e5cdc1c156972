"""The part of a kubelet that the local provider needs: what a cloud instance (ECI) does by
itself. Pure decisions (back-off, probe accounting, init progression) live in their own
modules; `worker` applies them to one podman pod."""
