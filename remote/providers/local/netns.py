"""The box's network: its own namespace, a veth pair, a fresh /30, NAT and DNS.

The box shares the namespace made here (nspawn --network-namespace-path), and the host
configures the box's interface from outside, so nothing inside the box manages it.
Every iptables rule carries the comment `mlops-box:<name>`, which is how teardown finds
exactly this box's rules and no one else's.
"""

from __future__ import annotations

import hashlib
import ipaddress
import itertools
import random
import shlex
from dataclasses import dataclass
from pathlib import Path

from remote.errors import ProviderError
from remote.providers.local.run import run

BOX_IFACE = "host0"
IFNAMSIZ = 15
NETNS_DIR = Path("/run/netns")
RESOLV_CONF = Path("/etc/resolv.conf")
# Where systemd-resolved keeps the upstream servers when /etc/resolv.conf is its stub.
RESOLVED_UPSTREAM = Path("/run/systemd/resolve/resolv.conf")
IPTABLES = ("iptables", "-w", "10")
RANDOM_PROBES = 64
_HINT = "check that this machine allows network namespaces and iptables, then retry."


@dataclass(frozen=True)
class NetPlan:
    """Everything one start of one box sets up on the host."""

    name: str
    netns: str
    host_if: str
    network: ipaddress.IPv4Network
    box_nameservers: tuple[str, ...]
    # A loopback resolver of this machine that the box's DNS is forwarded to, if any.
    dns_forward_to: str | None = None

    @property
    def host_ip(self) -> ipaddress.IPv4Address:
        return self.network[1]

    @property
    def box_ip(self) -> ipaddress.IPv4Address:
        return self.network[2]


def host_side(box_ip: ipaddress.IPv4Address) -> ipaddress.IPv4Address:
    """This machine's end of the /30 whose box end is `box_ip` (see NetPlan)."""
    return ipaddress.IPv4Network((box_ip, 30), strict=False)[1]


def netns_name(name: str) -> str:
    full = f"mlbox-{name}"
    return full if len(full) <= 40 else f"mlbox-{name[:24]}-{_digest(name)}"


def host_veth(name: str) -> str:
    """The host side's interface name: readable, unique per box, within IFNAMSIZ."""
    return f"vb-{name[:6]}-{_digest(name)[:5]}"[:IFNAMSIZ]


def rule_comment(name: str) -> str:
    return f"mlops-box:{name}"


def used_networks(ip_addr_output: str) -> list[ipaddress.IPv4Network]:
    """The networks of the addresses in `ip -4 -o addr show` output."""
    found = []
    for line in ip_addr_output.splitlines():
        fields = line.split()
        if "inet" in fields and fields.index("inet") + 1 < len(fields):
            iface = ipaddress.IPv4Interface(fields[fields.index("inet") + 1])
            found.append(iface.network)
    return found


def pick_network(
    subnet: ipaddress.IPv4Network,
    used: list[ipaddress.IPv4Network],
    rng: random.Random,
) -> ipaddress.IPv4Network:
    """A random /30 of `subnet` that overlaps none of `used`."""
    count = subnet.num_addresses // 4
    base = int(subnet.network_address)

    def candidate(index: int) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network((base + 4 * index, 30))

    # Random probes find a free /30 at once in a sparse subnet (a /8 has 4M of them);
    # only a nearly full subnet is scanned in order.
    probes = (candidate(rng.randrange(count)) for _ in range(RANDOM_PROBES))
    for net in itertools.chain(probes, map(candidate, range(count))):
        if not any(net.overlaps(u) for u in used):
            return net
    raise ProviderError(
        f"No free /30 is left in box.local.subnet {subnet}: stop other local boxes or "
        "give a larger subnet."
    )


def nameservers(resolv_text: str) -> list[str]:
    """The IPv4 nameservers in resolv.conf text (the box has IPv4 only)."""
    found = []
    for line in resolv_text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            try:
                address = ipaddress.IPv4Address(fields[1])
            except ValueError:
                continue
            found.append(str(address))
    return found


def plan_dns(resolv_texts: list[str]) -> tuple[list[str], str | None]:
    """(servers the box can reach through NAT, or a loopback resolver to forward to).

    `resolv_texts` is /etc/resolv.conf then systemd-resolved's upstream list. A loopback
    resolver (127.0.0.53, a local dnsmasq) is unreachable from the box's namespace, so
    the box then asks the host's veth address and DNAT hands that to the resolver.
    """
    loopback: str | None = None
    for text in resolv_texts:
        servers = nameservers(text)
        routable = [s for s in servers if not ipaddress.IPv4Address(s).is_loopback]
        if routable:
            return routable[:3], None
        loopback = loopback or next(iter(servers), None)
    # With no nameserver line at all, glibc asks 127.0.0.1.
    return [], loopback or "127.0.0.1"


def make_plan(name: str, subnet: ipaddress.IPv4Network, rng: random.Random) -> NetPlan:
    """Choose a fresh /30 (hold the allocation lock from here until `setup` is done)."""
    out = run(["ip", "-4", "-o", "addr", "show"], hint=_HINT).stdout
    network = pick_network(subnet, used_networks(out), rng)
    texts = [p.read_text() for p in (RESOLV_CONF, RESOLVED_UPSTREAM) if p.is_file()]
    servers, forward_to = plan_dns(texts)
    if forward_to is not None:
        servers = [str(network[1])]
    return NetPlan(name, netns_name(name), host_veth(name), network, tuple(servers), forward_to)


def iptables_rules(plan: NetPlan) -> list[tuple[str, list[str]]]:
    """(table, `-I chain ...` arguments) for each rule this box needs, all tagged."""
    net, veth = str(plan.network), plan.host_if
    tag = ["-m", "comment", "--comment", rule_comment(plan.name)]
    rules = [
        ("nat", ["POSTROUTING", "-s", net, "!", "-d", net, *tag, "-j", "MASQUERADE"]),
        # Hosts with Docker drop forwarded traffic by default: let the box's through.
        ("filter", ["FORWARD", "-i", veth, *tag, "-j", "ACCEPT"]),
        ("filter", ["FORWARD", "-o", veth, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED",
                    *tag, "-j", "ACCEPT"]),
    ]  # fmt: skip
    if plan.dns_forward_to:
        for proto in ("udp", "tcp"):
            match = ["-i", veth, "-d", str(plan.host_ip), "-p", proto, "--dport", "53"]
            target = ["-j", "DNAT", "--to-destination", f"{plan.dns_forward_to}:53"]
            rules.append(("nat", ["PREROUTING", *match, *tag, *target]))
            rules.append(("filter", ["INPUT", "-i", veth, "-p", proto, "--dport", "53", *tag,
                                     "-j", "ACCEPT"]))  # fmt: skip
    return rules


def setup(plan: NetPlan) -> None:
    """Make the namespace, veth pair, addresses, route and NAT of `plan`; undo all on failure."""
    ns, veth, prefix = plan.netns, plan.host_if, plan.network.prefixlen
    commands = [
        ["ip", "netns", "add", ns],
        ["ip", "link", "add", veth, "type", "veth", "peer", "name", BOX_IFACE, "netns", ns],
        ["ip", "addr", "add", f"{plan.host_ip}/{prefix}", "dev", veth],
        ["ip", "link", "set", veth, "up"],
        ["ip", "-n", ns, "link", "set", "lo", "up"],
        ["ip", "-n", ns, "addr", "add", f"{plan.box_ip}/{prefix}", "dev", BOX_IFACE],
        ["ip", "-n", ns, "link", "set", BOX_IFACE, "up"],
        ["ip", "-n", ns, "route", "add", "default", "via", str(plan.host_ip)],
    ]
    try:
        for cmd in commands:
            run(cmd, hint=_HINT)
        _sysctl("net/ipv4/ip_forward", "1")
        if plan.dns_forward_to:
            # Lets DNAT send the box's DNS to a resolver that listens on loopback only.
            _sysctl(f"net/ipv4/conf/{veth}/route_localnet", "1")
        for table, rule in iptables_rules(plan):
            run([*IPTABLES, "-t", table, "-I", *rule], hint=_HINT)
    except Exception:
        teardown(plan.name)
        raise


def teardown(name: str) -> bool:
    """Remove whatever a start of box `name` left on the host; return whether anything was."""
    changed = False
    for table in ("nat", "filter"):
        listing = run([*IPTABLES, "-t", table, "-S"], hint=_HINT).stdout
        for rule in tagged_rules(listing, rule_comment(name)):
            run([*IPTABLES, "-t", table, "-D", *rule], hint=_HINT)
            changed = True
    veth = host_veth(name)
    if Path("/sys/class/net", veth).exists():
        run(["ip", "link", "del", veth], hint=_HINT)
        changed = True
    if (NETNS_DIR / netns_name(name)).exists():
        run(["ip", "netns", "del", netns_name(name)], hint=_HINT)
        changed = True
    return changed


def tagged_rules(listing: str, comment: str) -> list[list[str]]:
    """The `chain rule...` arguments, from `iptables -S` output, of rules tagged `comment`."""
    found = []
    for line in listing.splitlines():
        words = shlex.split(line)
        if len(words) > 2 and words[0] == "-A" and _has_comment(words, comment):
            found.append(words[1:])
    return found


def _has_comment(words: list[str], comment: str) -> bool:
    return any(a == "--comment" and b == comment for a, b in itertools.pairwise(words))


def _sysctl(key: str, value: str) -> None:
    path = Path("/proc/sys", key)
    try:
        if path.read_text().strip() != value:
            path.write_text(value + "\n")
    except OSError as exc:
        raise ProviderError(
            f"Cannot set {key.replace('/', '.')}={value} ({exc}): {_HINT}"
        ) from None


def _digest(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:8]
