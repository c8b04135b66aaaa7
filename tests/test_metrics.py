"""/metrics of a running sidecar, parsed with prometheus-client's own parser, and the
metrics observer driven by the real refresh loop for the slow failure classes."""

from __future__ import annotations

import asyncio
import random
import threading
from datetime import datetime
from pathlib import Path

import anyio
import httpx
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sidecar_process import start_sidecar, wait_until  # noqa: F401
from vendor_double import error, raw

from sidecar.loop import RefreshLoop
from sidecar.metrics import FAILURE_CLASSES, Metrics
from sidecar.publish import Publisher
from sidecar.vendor import VendorClient, build_http_client

PINNED = {
    "vend_sidecar_credentials_expiry_timestamp_seconds": "gauge",
    "vend_sidecar_last_success_timestamp_seconds": "gauge",
    "vend_sidecar_refresh": "counter",  # exposed as vend_sidecar_refresh_total
    "vend_sidecar_refresh_failures": "counter",  # vend_sidecar_refresh_failures_total
    "vend_sidecar_vendor_request_duration_seconds": "histogram",
    "vend_sidecar_token_expiry_timestamp_seconds": "gauge",
}


def scrape(text: str) -> dict[str, float]:
    """``{"name{label=value}": value}`` for every sample, via prometheus-client's parser."""
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


def families(text: str) -> dict[str, str]:
    return {family.name: family.type for family in text_string_to_metric_families(text)}


def epoch(rfc3339: str) -> float:
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


def held(handler, gate: threading.Event):
    """``handler``, answered only once ``gate`` is set (bounded)."""

    async def wrapper(request, double):
        await asyncio.get_running_loop().run_in_executor(None, gate.wait, 30.0)
        return await handler(request, double)

    return wrapper


def test_metrics_follow_failures_and_the_publish(start_sidecar, vendor, token_dir) -> None:  # noqa: F811
    gate = threading.Event()
    vendor.script(held(error(503, "backend_unavailable"), gate), raw(200, b'{"access_key_id": "ASIAX"}'))
    sidecar = start_sidecar("--health-addr", "127.0.0.1:0")
    base = sidecar.url()
    wait_until(lambda: vendor.requests, what="the first request")
    before = scrape(httpx.get(base + "/metrics", timeout=5).text)
    gate.set()
    sidecar.wait_event("publish")
    text = httpx.get(base + "/metrics", timeout=5).text
    values = scrape(text)

    assert {name: families(text).get(name) for name in PINNED} == PINNED
    assert values["vend_sidecar_refresh_total{result=success}"] == 1
    assert values["vend_sidecar_refresh_total{result=failure}"] == 2
    assert values["vend_sidecar_refresh_failures_total{class=transient}"] == 1
    assert values["vend_sidecar_refresh_failures_total{class=invalid_answer}"] == 1
    for cls in ("auth", "denied", "token", "publish"):
        assert values[f"vend_sidecar_refresh_failures_total{{class={cls}}}"] == 0
    assert values["vend_sidecar_vendor_request_duration_seconds_count"] == len(vendor.requests) == 3
    assert values["vend_sidecar_credentials_expiry_timestamp_seconds"] == epoch(vendor.issued[-1]["expiration"])
    token_exp = sidecar.find("token.loaded")["exp"]
    assert values["vend_sidecar_token_expiry_timestamp_seconds"] == token_exp
    success = sidecar.find("vend.success")
    assert abs(values["vend_sidecar_last_success_timestamp_seconds"] - epoch(success["ts"])) < 1.0
    assert "process_resident_memory_bytes" in values

    # Before the first publish the timestamp gauges are absent (not 0), the counters 0.
    assert "vend_sidecar_credentials_expiry_timestamp_seconds" not in before
    assert "vend_sidecar_last_success_timestamp_seconds" not in before
    assert before["vend_sidecar_token_expiry_timestamp_seconds"] == token_exp
    assert before["vend_sidecar_refresh_total{result=failure}"] == 0
    for secret in vendor.secrets():
        assert secret not in text
    assert vendor.issued[-1]["access_key_id"] not in text


def test_publish_failures_are_counted_and_recover(start_sidecar, vendor, out_dir: Path) -> None:  # noqa: F811
    out_dir.mkdir()
    foreign = out_dir / "access_key_id"
    foreign.write_text("not ours")
    sidecar = start_sidecar("--health-addr", "127.0.0.1:0")
    base = sidecar.url()
    sidecar.wait_event("vend.failure", **{"class": "publish"})
    count = scrape(httpx.get(base + "/metrics", timeout=5).text)["vend_sidecar_refresh_failures_total{class=publish}"]
    assert count >= 1
    foreign.unlink()
    sidecar.wait_event("publish")
    values = scrape(httpx.get(base + "/metrics", timeout=5).text)
    assert values["vend_sidecar_refresh_total{result=success}"] == 1
    assert values["vend_sidecar_refresh_failures_total{class=publish}"] >= count


@pytest.mark.anyio
async def test_slow_failure_classes_through_the_real_loop(vendor, token_dir, out_dir: Path, fake_clock) -> None:
    """auth (401), denied (403) and token errors back off for minutes, so this drives
    the real loop, vendor client and publisher on a virtual clock instead."""
    from conftest import make_jwt

    token_dir.write(make_jwt(exp=int(fake_clock.now()) - 10))  # expired: a token error
    vendor.script(error(401, "invalid_token"), error(403, "denied", "prefix_not_allowed"))
    published = anyio.Event()

    class SignallingMetrics(Metrics):
        def published(self, *args: object) -> None:
            super().published(*args)  # type: ignore[arg-type]
            published.set()

    metrics = SignallingMetrics(process_metrics=False)

    async def sleep(seconds: float) -> None:
        await fake_clock.sleep(seconds)
        token_dir.write(make_jwt(exp=int(fake_clock.now()) + 3600))  # kubelet rotates it

    async with build_http_client(timeout=5.0) as http:
        vendor_client = VendorClient(vendor_url=vendor.url, bucket="artifacts", prefix="", actions=["read"],
                                     ttl_seconds=1800, http=http, clock=fake_clock.now)
        loop = RefreshLoop(token_file=token_dir.path, vendor=vendor_client, publisher=Publisher(out_dir),
                           clock=fake_clock.now, sleep=sleep, rng=random.Random(7), observer=metrics, watch=False)
        metrics.watch(loop.status)
        async with anyio.create_task_group() as tg:
            tg.start_soon(loop.run)
            with anyio.fail_after(20):
                await published.wait()
            tg.cancel_scope.cancel()

    values = scrape(generate_latest(metrics.registry).decode())
    assert [values[f"vend_sidecar_refresh_failures_total{{class={c}}}"] for c in FAILURE_CLASSES] == [0, 1, 1, 0, 1, 0]
    assert values["vend_sidecar_refresh_total{result=failure}"] == 3
    assert values["vend_sidecar_refresh_total{result=success}"] == 1
    # The token error never reached the vendor: only real requests are timed.
    assert values["vend_sidecar_vendor_request_duration_seconds_count"] == len(vendor.requests) == 3
    assert values["vend_sidecar_token_expiry_timestamp_seconds"] == loop.status.token_expiry
