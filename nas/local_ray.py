"""Ray on this machine: a local Ray instance that listens on 127.0.0.1 only.

Asking Ray 2.60 for ``ray.init(_node_ip_address="127.0.0.1")`` is not enough: Ray turns a
loopback node address into the machine's network address
(``services.resolve_ip_for_localhost``), and its GCS, raylet and workers then listen on
every interface. Ray keeps a node on loopback, and binds every port there, when its
single-machine switch ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` is in effect (the default on
macOS and Windows). Ray reads that switch when it is imported, so :func:`init_ray` sets it
both in the environment of the processes Ray starts and on Ray's constant in this
process, and only while ``ray.init`` runs. Connecting to a cluster on loopback needs the same
switch (Ray would dial the machine's network address); any other address is left as it is.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

SINGLE_MACHINE_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
LOOPBACK = "127.0.0.1"


@contextlib.contextmanager
def _single_machine() -> Iterator[None]:
    from ray._private import ray_constants

    saved_env, saved_flag = os.environ.get(SINGLE_MACHINE_SWITCH), ray_constants.ENABLE_RAY_CLUSTER
    os.environ[SINGLE_MACHINE_SWITCH] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved_flag
        if saved_env is None:
            os.environ.pop(SINGLE_MACHINE_SWITCH, None)
        else:
            os.environ[SINGLE_MACHINE_SWITCH] = saved_env


def init_ray(address: str | None = None, **kwargs: Any) -> bool:
    """``ray.init(address=address, **kwargs)``; a new local instance listens on 127.0.0.1 only.

    ``address="local"`` always starts a new instance; ``None`` does when neither
    ``RAY_ADDRESS`` nor a cluster running on this machine is found (Ray's own rule).
    Returns True when this call started the instance: the caller then shuts it down
    (``ray.shutdown()``) when it is done with it.
    """
    import ray
    from ray._private import services

    starts = address == "local" or (address is None and services.canonicalize_bootstrap_address(None) is None)
    if starts:
        with _single_machine():
            ray.init(address="local", _node_ip_address=LOOPBACK, **kwargs)
        return True
    if address is not None and _on_loopback(address):
        # a cluster on this machine's loopback (``ray start`` with the switch): Ray would
        # otherwise dial the machine's network address, where nothing listens
        with _single_machine():
            ray.init(address=address, **kwargs)
    else:
        ray.init(address=address, **kwargs)
    return False


def _on_loopback(address: str) -> bool:
    """Whether ``HOST:PORT`` names a loopback host (``ray://`` client addresses do not count)."""
    import ipaddress

    host = address.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
