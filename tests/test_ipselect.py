"""Which address wins, over real kernel address dumps in a network namespace.

Each check runs the real CLI (``edgeddns update --dry-run --json``) inside the
namespace, so the addresses come from the kernel's own netlink dump with its
own flags (temporary, deprecated, tentative) and lifetimes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from edgeddns.ipselect import POLICIES, Candidate, parse_match, rank
from edgeddns.ipsuffix import combine, parse_suffix
from tests.agentproc import env
from tests.conftest import ROOT, write_config
from tests.test_netevents import _ip
from tests.test_netevents import netns as _netns_fixture

netns = _netns_fixture  # the same fixture: a namespace with lo and a veth wan0/peer0 pair

CFG = """
[agent]
node_id = "sel"
state_dir = "{d}/state"
[ip]
ipv6 = ["interface:wan0"]
{ip_extra}
[providers.lan]
type = "hosts"
path = "{d}/hosts"
[[records]]
name = "home.example.com"
type = "AAAA"
provider = "lan"
{rec_extra}
"""


def _config(tmp_path, ip_extra: str = "", rec_extra: str = "", name: str = "config.toml") -> str:
    return write_config(tmp_path, CFG.format(d=tmp_path, ip_extra=ip_extra, rec_extra=rec_extra), name=name)


def dry_run(ns: str, cfg: str) -> dict:
    """The one result of ``update --dry-run --json`` run inside the namespace."""
    p = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-m", "edgeddns", "update", "--dry-run",
                        "--json", "-c", cfg], capture_output=True, text=True, timeout=30, env=env(), cwd=ROOT)
    lines = [x for x in p.stdout.splitlines() if x.startswith("{")]
    assert len(lines) == 1, (p.stdout, p.stderr)
    return json.loads(lines[0])


def test_readded_address_does_not_flip_the_choice(netns, tmp_path):
    cfg = _config(tmp_path)
    _ip(netns, "-6", "addr", "add", "2a01:4f8:10a:1::5/64", "dev", "wan0", "nodad")
    _ip(netns, "-6", "addr", "add", "2a01:4f8:10a:1::3/64", "dev", "wan0", "nodad")
    first = dry_run(netns, cfg)["ip"]
    assert first is not None
    # The same two addresses, but ::5 is now the newest in the kernel's list.
    _ip(netns, "-6", "addr", "del", "2a01:4f8:10a:1::5/64", "dev", "wan0")
    _ip(netns, "-6", "addr", "add", "2a01:4f8:10a:1::5/64", "dev", "wan0", "nodad")
    assert dry_run(netns, cfg)["ip"] == first


def _sysctl(ns: str, key: str, value: str) -> None:
    subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw", f"{key}={value}"], check=True, timeout=10)


def _addrs(ns: str) -> str:
    return subprocess.run(["ip", "netns", "exec", ns, "ip", "-6", "addr", "show", "dev", "wan0"],
                          capture_output=True, text=True, timeout=10).stdout


P = "2a01:4f8:10a:1"
EUI = "211:32ff:fe12:3456"


def _crowded(ns: str) -> None:
    """wan0 with every kind of address the kernel makes, none of them in list order by chance."""
    _sysctl(ns, "net.ipv6.conf.wan0.accept_dad", "0")
    _sysctl(ns, "net.ipv6.conf.wan0.use_tempaddr", "2")
    # A SLAAC-like dynamic address whose prefix the kernel also makes a temporary (privacy) address for.
    _ip(ns, "-6", "addr", "add", f"{P}:{EUI}/64", "dev", "wan0", "mngtmpaddr", "valid_lft", "7200",
        "preferred_lft", "3600")
    _ip(ns, "-6", "addr", "add", f"{P}::1/64", "dev", "wan0", "preferred_lft", "0")  # deprecated
    _ip(ns, "-6", "addr", "add", f"{P}::9/64", "dev", "wan0")  # permanent
    time.sleep(0.05)  # the kernel's creation stamp counts in 1/100 s: make "newest" unambiguous
    _ip(ns, "-6", "addr", "add", "2a01:4f8:10a:2::4/64", "dev", "wan0", "valid_lft", "9000",
        "preferred_lft", "8000")  # another prefix, the longest finite lifetime
    # DAD that never ends: this one stays tentative.
    _sysctl(ns, "net.ipv6.conf.wan0.accept_dad", "1")
    _sysctl(ns, "net.ipv6.conf.wan0.dad_transmits", "1000")
    _ip(ns, "-6", "addr", "add", f"{P}::2/64", "dev", "wan0")
    shown = _addrs(ns)
    assert "temporary" in shown and "deprecated" in shown and "tentative" in shown, shown


def test_policies_over_a_real_kernel_dump(netns, tmp_path):
    _crowded(netns)
    temp = [x.split()[1].split("/")[0] for x in _addrs(netns).splitlines() if "temporary" in x][0]
    stable = dry_run(netns, _config(tmp_path))
    assert stable["ip"] == f"{P}::9", stable  # permanent before dynamic, whatever the list order
    sel = stable["selection"]
    assert sel["policy"] == "stable" and "permanent" in sel["reason"], sel
    for skipped in (f"{P}::1 (deprecated)", f"{P}::2 (tentative)", f"{temp} (temporary (privacy))"):
        assert skipped in sel["reason"], sel
    lifetime = dry_run(netns, _config(tmp_path, rec_extra='select = "longest_lifetime"', name="l.toml"))
    assert lifetime["ip"] == f"{P}::9" and lifetime["selection"]["policy"] == "longest_lifetime"
    newest = dry_run(netns, _config(tmp_path, rec_extra='select = "newest"', name="n.toml"))
    assert newest["ip"] == "2a01:4f8:10a:2::4", newest  # ::2 came later, but is tentative
    # match narrows the field before the policy ranks it.
    by_prefix = dry_run(netns, _config(tmp_path, ip_extra='match = "2a01:4f8:10a:2::/64"', name="m.toml"))
    assert by_prefix["ip"] == "2a01:4f8:10a:2::4", by_prefix
    by_iid = dry_run(netns, _config(tmp_path, rec_extra=f'match = "::{EUI}"', name="e.toml"))
    assert by_iid["ip"] == f"{P}:{EUI}", by_iid
    dynamic = dry_run(netns, _config(tmp_path, rec_extra='match = "2a01:4f8:10a::/48"\nselect = "longest_lifetime"',
                                     name="d.toml"))
    assert dynamic["ip"] == f"{P}::9"
    # Without the permanent one, longest_lifetime and stable differ.
    _ip(netns, "-6", "addr", "del", f"{P}::9/64", "dev", "wan0")
    assert dry_run(netns, _config(tmp_path))["ip"] == f"{P}:{EUI}"  # dynamic: lowest address
    assert dry_run(netns, _config(tmp_path, rec_extra='select = "longest_lifetime"', name="l.toml"))["ip"] \
        == "2a01:4f8:10a:2::4"


def test_nothing_usable_says_why(netns, tmp_path):
    _ip(netns, "-6", "addr", "add", f"{P}::1/64", "dev", "wan0", "nodad", "preferred_lft", "0")
    res = dry_run(netns, _config(tmp_path))
    assert res["status"] == "failed" and res["ip"] is None
    assert f"{P}::1 deprecated" in res["error"]["message"], res


# ---- properties of the policy itself (no namespace needed) ----------------------------------------

_rarely = st.sampled_from([False, False, False, True])
_cand = st.builds(
    Candidate,
    address=st.integers(0, 2**16 - 1).map(lambda n: f"2a01:4f8:10a:{n % 4:x}::{n:x}"),
    temporary=_rarely, deprecated=_rarely, tentative=_rarely,
    preferred=st.one_of(st.none(), st.integers(0, 10**6)), valid=st.one_of(st.none(), st.integers(0, 10**6)),
    created=st.one_of(st.none(), st.integers(1, 10**6)), known=st.just(True))


@settings(max_examples=300, deadline=None)
@given(st.lists(_cand, max_size=8, unique_by=lambda c: c.address), st.sampled_from(POLICIES), st.randoms())
def test_choice_does_not_depend_on_list_order(cands, policy, rnd):
    first, _ = rank(cands, 6, policy)
    shuffled = list(cands)
    rnd.shuffle(shuffled)
    for other in (shuffled, cands[::-1]):
        again, _ = rank(other, 6, policy)
        assert [c.address for c in first] == [c.address for c in again]
    assert not any(c.temporary or c.deprecated or c.tentative or c.preferred == 0 for c in first)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**128 - 1), st.integers(1, 127), st.integers(1, 2**127))
def test_combination_keeps_prefix_and_suffix_bits(prefix, plen, raw_suffix):
    import ipaddress

    suffix = raw_suffix & ((1 << (128 - plen)) - 1) or 1
    text = str(ipaddress.IPv6Address(suffix))
    out = int(ipaddress.IPv6Address(combine(str(ipaddress.IPv6Address(prefix)), parse_suffix(text, plen), plen)))
    assert out >> (128 - plen) == prefix >> (128 - plen)
    assert out & ((1 << (128 - plen)) - 1) == suffix
    assert parse_match("::211:32ff:fe12:3456").fits("2a01:4f8:10a:1:211:32ff:fe12:3456")
