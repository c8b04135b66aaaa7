"""Run the vend-sidecar CLI as an unprivileged user: ``python unprivileged.py UID GID ARGV...``

The test suite may run as root (CI containers do), and root ignores permission bits,
so ``chmod 000`` proves nothing there. This wrapper gives the tests a real
unprivileged process instead: it imports everything a ``run`` needs while still
root (the interpreter's standard library may sit under a directory only root can
enter, e.g. ``/root/.pyenv``), then drops to UID/GID (``setgroups``, ``setgid``,
``setuid``, in that order, so it cannot regain root) and calls
:func:`sidecar.cli.main`. The process is the real CLI from then on.
"""

from __future__ import annotations

import os
import sys

# Everything a daemon run touches, imported while the standard library is reachable.
import anyio
import anyio._backends._asyncio  # noqa: F401
import anyio.to_thread  # noqa: F401
import certifi
import encodings.idna  # noqa: F401
import h11  # noqa: F401
import httpcore  # noqa: F401
import httpx  # noqa: F401
import watchfiles  # noqa: F401

import sidecar.cli
import sidecar.consumer  # noqa: F401
import sidecar.loop  # noqa: F401
import sidecar.publish  # noqa: F401
import sidecar.vendor

uid, gid, argv = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
# Load the default CA bundle and an SSL context once, so nothing lazy is left.
sidecar.vendor.build_ssl_context()
with open(certifi.where(), "rb"):
    pass
anyio.run(anyio.sleep, 0)

if (os.getuid(), os.getgid()) != (uid, gid):
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
assert os.geteuid() == uid and os.getegid() == gid
sys.exit(sidecar.cli.main(argv))
