"""The local sandbox behind ``vend-sidecar dev``: every piece of the production flow,
on loopback, in one process. Nothing here is imported by ``vend-sidecar run``.

::

    issuer ──token file──► sidecar loop ──POST /v1/credentials──► dev vending service
    (ES256, OIDC + JWKS)    (the real one)                          │ verify JWT (JWKS)
                                                                    │ grants file (policy)
                                                                    ▼
                               consumer ◄── OUT/..data ◄──   moto S3/STS/IAM (server mode,
                                                             IAM enforcement on)

* :mod:`sidecar.dev.issuer`       local identity issuer (stands in for key-cape)
* :mod:`sidecar.dev.grants`       the grants file and its pure decision (stands in for flex-auth)
* :mod:`sidecar.dev.vending`      the dev vending service, contract v1 exactly
* :mod:`sidecar.dev.objectstore`  moto in server mode, provisioned, enforcement on (stands in for MinIO)
* :mod:`sidecar.dev.cli`          ``vend-sidecar dev``
* :mod:`sidecar.dev.probe`        ``python -m sidecar.dev.probe``: try the published credentials

Production counterparts and the differences are in ``docs/sandbox.md``.
"""

__all__: list[str] = []
