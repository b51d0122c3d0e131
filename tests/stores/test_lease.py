"""stores/lease.py: what a lease says and when it is expired, mine or due for renewal (pure)."""
import pytest

from pytest_trt.errors import TrtCompareError
from pytest_trt.stores import is_url
from pytest_trt.stores import lease as L


def test_lease_round_trips_and_damaged_leases_decode_to_none():
    lease = L.Lease("host:1:ab", 1000.0, 30.0)
    assert L.decode(lease.encode()) == lease
    for data in (b"", b"{", b"[]", b'{"owner": "x"}', b'{"owner": "x", "renewed": 1, "ttl": 0}',
                 b'{"owner": "x", "renewed": "nan", "ttl": 5}', b"\xff"):
        assert L.decode(data) is None, data


def test_a_lease_unchanged_for_its_ttl_on_our_clock_is_expired_whatever_its_writer_clock_says():
    lease = L.Lease("a", renewed=5000.0, ttl=10.0)      # writer's clock far ahead of ours
    seen = L.sight(None, "etag1", now=100.0)
    assert not L.expired(lease, seen, now=109.9, wall=1000.0, ttl=60.0)
    assert L.expired(lease, seen, now=110.0, wall=1000.0, ttl=60.0)


def test_a_renewed_lease_restarts_the_observation():
    seen = L.sight(None, "e1", 100.0)
    assert L.sight(seen, "e1", 105.0) is seen
    renewed = L.sight(seen, "e2", 105.0)
    assert renewed.since == 105.0
    assert not L.expired(L.Lease("a", 1000.0, 10.0), renewed, now=114.0, wall=1001.0, ttl=10.0)


def test_a_lease_renewed_long_ago_by_its_writer_clock_is_expired_at_first_sight():
    seen = L.sight(None, "e", 100.0)
    assert L.expired(L.Lease("a", renewed=1000.0, ttl=10.0), seen, now=100.0, wall=1020.1, ttl=60.0)
    # within two ttls (clocks may differ by one) it is not
    assert not L.expired(L.Lease("a", renewed=1000.0, ttl=10.0), seen, now=100.0, wall=1019.9, ttl=60.0)


def test_an_undecodable_lease_expires_after_our_ttl():
    seen = L.sight(None, "e", 0.0)
    assert not L.expired(None, seen, now=5.9, wall=1e9, ttl=6.0)
    assert L.expired(None, seen, now=6.0, wall=1e9, ttl=6.0)


def test_mine_renewal_and_polling():
    owner = L.new_owner()
    assert L.is_mine(L.Lease(owner, 0, 1), owner) and not L.is_mine(L.Lease("other", 0, 1), owner)
    assert not L.is_mine(None, owner) and owner != L.new_owner()
    assert not L.renewal_due(last=0.0, now=9.9, ttl=30.0) and L.renewal_due(last=0.0, now=10.0, ttl=30.0)
    delays = [L.poll_delay(i, 60.0) for i in range(20)]
    assert delays[0] == pytest.approx(0.2) and max(delays) == 2.0 and delays == sorted(delays)
    assert max(L.poll_delay(i, 1.0) for i in range(20)) == pytest.approx(0.1)


def test_lease_seconds_from_the_environment():
    assert L.lease_seconds({}) == L.DEFAULT_LEASE_SECONDS
    assert L.lease_seconds({L.LEASE_ENV: " 2.5 "}) == 2.5
    for bad in ("0", "-1", "soon", "inf"):
        with pytest.raises(TrtCompareError, match=rf"PYTEST_TRT_LEASE_SECONDS='{bad}' is not a positive number"):
            L.lease_seconds({L.LEASE_ENV: bad})


def test_is_url():
    assert is_url("s3://bucket/prefix") and is_url("gs://b") and is_url("file:///tmp/x")
    from pathlib import Path
    assert not is_url(Path("s3://x")) and not is_url("/tmp/x") and not is_url("cache") and not is_url(None)
    assert not is_url("C:\\x")
