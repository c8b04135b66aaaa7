"""vend-sidecar: turn a pod's identity token into short-lived object-storage
credentials, published atomically on disk and refreshed before they expire.

Modules, functional core first:

* :mod:`sidecar.contract`  vending API v1 request shape and answer validation (pure)
* :mod:`sidecar.schedule`  refresh point, jitter and backoff (pure)
* :mod:`sidecar.render`    the bytes of each published file (pure)
* :mod:`sidecar.token`     token file reading, claim decoding, directory watch
* :mod:`sidecar.vendor`    the HTTP client for the vending service
* :mod:`sidecar.publish`   atomic, durable publication (kubelet's AtomicWriter + fsync)
* :mod:`sidecar.loop`      the refresh loop, the only owner of control flow
* :mod:`sidecar.consumer`  reading a published set safely; refreshable aiobotocore credentials
* :mod:`sidecar.sts`       direct STS exchange, ``--exchange sts`` (sandbox only; lazy aiobotocore)
* :mod:`sidecar.dev`       the local sandbox behind ``vend-sidecar dev`` (never imported by ``run``)
* :mod:`sidecar.settings`, :mod:`sidecar.cli`, :mod:`sidecar.logs`
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
