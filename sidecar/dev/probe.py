"""``python -m sidecar.dev.probe``: try the published credentials against the sandbox's S3.

Uses the consumer library exactly as an application would
(:func:`sidecar.consumer.aio_session`): puts, reads back and lists an object under
the prefix, then shows that a write outside the prefix is refused. Prints one line
per step and exits 0 only if every step behaved as expected. No secret is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from collections.abc import Sequence

__all__ = ["main", "probe"]


async def probe(*, out: str, endpoint_url: str, bucket: str, prefix: str, region: str = "us-east-1") -> list[tuple[str, bool, str]]:
    """Run the steps; returns ``(step, as_expected, detail)`` for each."""
    from botocore.exceptions import ClientError

    from ..consumer import aio_session

    results: list[tuple[str, bool, str]] = []
    session = aio_session(out)
    key = f"{prefix}probe-{uuid.uuid4().hex[:8]}.txt"
    body = f"hello from vend-sidecar at {time.strftime('%H:%M:%S')}\n".encode()
    async with session.create_client("s3", endpoint_url=endpoint_url, region_name=region) as s3:
        frozen = await (await session.get_credentials()).get_frozen_credentials()
        results.append(("credentials", True, f"access key {frozen.access_key} from {out}"))
        try:
            await s3.put_object(Bucket=bucket, Key=key, Body=body)
            results.append((f"put s3://{bucket}/{key}", True, "ok"))
            answer = await s3.get_object(Bucket=bucket, Key=key)
            async with answer["Body"] as stream:
                same = await stream.read() == body
            results.append((f"get s3://{bucket}/{key}", same, "same bytes" if same else "DIFFERENT bytes"))
            listing = await s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
            count = listing.get("KeyCount", 0)
            results.append((f"list s3://{bucket}/{prefix}", count >= 1, f"{count} object(s)"))
        except ClientError as exc:
            results.append(("inside the prefix", False, exc.response.get("Error", {}).get("Code", "error")))
        outside = f"not-{prefix or 'granted/'}probe.txt"
        try:
            await s3.put_object(Bucket=bucket, Key=outside, Body=body)
            results.append((f"put s3://{bucket}/{outside}", False, "ALLOWED outside the prefix"))
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "error")
            results.append((f"put s3://{bucket}/{outside}", code == "AccessDenied", f"refused: {code} (expected)"))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sidecar.dev.probe", description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="the sidecar's output directory")
    parser.add_argument("--endpoint-url", required=True, help="S3 endpoint (the banner prints it)")
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--prefix", default="")
    args = parser.parse_args(argv)
    from ..errors import NotPublished

    try:
        results = asyncio.run(probe(out=args.out, endpoint_url=args.endpoint_url, bucket=args.bucket, prefix=args.prefix))
    except NotPublished as exc:
        print(f"probe: {exc}", file=sys.stderr)
        return 1
    for step, ok, detail in results:
        print(f"{'ok  ' if ok else 'FAIL'} {step}: {detail}")
    return 0 if all(ok for _, ok, _ in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
