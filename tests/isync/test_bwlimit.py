import time

from services.isync.bwlimit import TokenBucket


def test_token_bucket_limits_the_average_rate():
    bucket = TokenBucket(rate=10 << 20, burst=1 << 20)
    t0 = time.monotonic()
    bucket.acquire(1 << 20)  # the burst: no wait
    assert time.monotonic() - t0 < 0.05
    bucket.acquire(2 << 20)  # 2 MiB at 10 MiB/s
    elapsed = time.monotonic() - t0
    assert 0.17 <= elapsed < 0.6
