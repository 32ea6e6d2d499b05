"""The local provider's pure parts: names, address allocation, DNS plan, rules, rendering."""

from __future__ import annotations

import datetime
import ipaddress
import os
import random
import socket
import subprocess
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from remote.errors import (
    BoxNotFound,
    ProviderError,
    SshConfigError,
    UnsupportedPlatform,
)
from remote.providers.local import boxconfig, netns, nspawn, rootfs
from remote.providers.local.provider import LocalProvider, ssh_banner
from remote.providers.local.run import command_failed, require_host, run
from remote.settings import load_settings

SUBNET = ipaddress.IPv4Network("10.213.0.0/16")
IP_ADDR = """\
1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever
2: eth0    inet 192.0.2.2/24 brd 192.0.2.255 scope global eth0\\       valid_lft forever
7: vb-a-1234    inet 10.213.4.1/30 scope global vb-a-1234\\       valid_lft forever
"""


def test_interface_names_fit_ifnamsiz_and_differ_per_box() -> None:
    long_a, long_b = "mlops-zoomcamp-a", "mlops-zoomcamp-b"
    assert len(netns.host_veth(long_a)) <= 15
    assert netns.host_veth(long_a) != netns.host_veth(long_b)
    assert netns.netns_name("mlops-zoomcamp") == "mlbox-mlops-zoomcamp"
    assert len(netns.netns_name("x" * 200)) <= 40


def test_used_networks_reads_ip_addr_output() -> None:
    assert netns.used_networks(IP_ADDR) == [
        ipaddress.IPv4Network("127.0.0.0/8"),
        ipaddress.IPv4Network("192.0.2.0/24"),
        ipaddress.IPv4Network("10.213.4.0/30"),
    ]


def test_pick_network_is_a_free_slash30_of_the_subnet() -> None:
    used = netns.used_networks(IP_ADDR)
    picks = {netns.pick_network(SUBNET, used, random.Random(seed)) for seed in range(50)}
    assert len(picks) > 40
    for net in picks:
        assert net.prefixlen == 30 and net.subnet_of(SUBNET)
        assert not net.overlaps(ipaddress.IPv4Network("10.213.4.0/30"))


def test_pick_network_says_what_to_do_when_the_subnet_is_full() -> None:
    small = ipaddress.IPv4Network("10.213.0.0/28")
    with pytest.raises(ProviderError, match="larger subnet"):
        netns.pick_network(small, [small], random.Random(0))


@pytest.mark.parametrize(
    ("texts", "servers", "forward"),
    [
        (["nameserver 10.255.255.53\nnameserver ::1\n"], ["10.255.255.53"], None),
        (["nameserver 127.0.0.53\n", "nameserver 192.0.2.53\n"], ["192.0.2.53"], None),
        (["nameserver 127.0.0.53\noptions edns0\n"], [], "127.0.0.53"),
        (["search example.org\n"], [], "127.0.0.1"),
    ],
)
def test_plan_dns(texts: list[str], servers: list[str], forward: str | None) -> None:
    assert netns.plan_dns(texts) == (servers, forward)


def _plan(forward: str | None) -> netns.NetPlan:
    net = ipaddress.IPv4Network("10.213.8.4/30")
    return netns.NetPlan("box", "mlbox-box", "vb-box-1", net, ("10.213.8.5",), forward)


def test_every_rule_is_tagged_and_dns_forwarding_adds_dnat() -> None:
    plain, forwarding = netns.iptables_rules(_plan(None)), netns.iptables_rules(_plan("127.0.0.53"))
    assert len(plain) == 3 and len(forwarding) == 7
    for _, rule in forwarding:
        assert rule[rule.index("--comment") + 1] == "mlops-box:box"
    dnat = [rule for _, rule in forwarding if "DNAT" in rule]
    assert all("127.0.0.53:53" in rule and "10.213.8.5" in rule for rule in dnat)
    assert _plan(None).host_ip == ipaddress.IPv4Address("10.213.8.5")
    assert _plan(None).box_ip == ipaddress.IPv4Address("10.213.8.6")


def test_tagged_rules_finds_exactly_this_boxs_rules() -> None:
    listing = (
        "-P FORWARD ACCEPT\n"
        '-A FORWARD -i vb-a -m comment --comment "mlops-box:a" -j ACCEPT\n'
        '-A FORWARD -i vb-a2 -m comment --comment "mlops-box:a2" -j ACCEPT\n'
        "-A FORWARD -i docker0 -j ACCEPT\n"
    )
    assert netns.tagged_rules(listing, "mlops-box:a") == [
        ["FORWARD", "-i", "vb-a", "-m", "comment", "--comment", "mlops-box:a", "-j", "ACCEPT"]
    ]


def test_cache_key_changes_with_what_shapes_the_image() -> None:
    key = rootfs.cache_key("bookworm", "http://deb.debian.org/debian")
    assert key == rootfs.cache_key("bookworm", "http://deb.debian.org/debian")
    assert key.startswith("bookworm-")
    assert key != rootfs.cache_key("bookworm", "http://mirror.example/debian")
    assert key != rootfs.cache_key("trixie", "http://deb.debian.org/debian")


def test_sources_list_adds_security_only_for_the_default_mirror() -> None:
    default = rootfs.render_sources_list("bookworm", "http://deb.debian.org/debian")
    assert "debian-security bookworm-security main" in default
    other = rootfs.render_sources_list("bookworm", "http://mirror.example/debian")
    assert "security" not in other and "bookworm-updates" in other


def test_debootstrap_and_nspawn_commands() -> None:
    cmd = rootfs.debootstrap_command("bookworm", "http://m/debian", Path("/c/x"))
    assert cmd[-3:] == ["bookworm", "/c/x", "http://m/debian"]
    assert "openssh-server" in cmd[2] and "systemd-sysv" in cmd[2]
    boot = nspawn.command(
        Path("/r/box/rootfs"), "box", Path("/run/netns/mlbox-box"), Path("/c/packages")
    )
    assert "--boot" in boot and "--register=no" in boot and "--machine=box" in boot
    assert "--network-namespace-path=/run/netns/mlbox-box" in boot
    assert "--capability=CAP_NET_ADMIN" in boot  # its own namespace's firewall, as on EC2
    assert "--bind=/c/packages:/var/cache/mlops-box" in boot


def test_renderers() -> None:
    assert boxconfig.render_sudoers("ubuntu") == "ubuntu ALL=(ALL) NOPASSWD:ALL\n"
    assert "PasswordAuthentication no" in boxconfig.render_sshd_drop_in()
    assert "PermitRootLogin no" in boxconfig.render_sshd_drop_in()
    assert boxconfig.render_pip_conf() == (
        "[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n"
        "cache-dir = /var/cache/mlops-box/pip\n"
    )
    assert boxconfig.render_resolv_conf(["10.0.0.1"]) == "nameserver 10.0.0.1\n"
    assert "127.0.1.1\tbox" in boxconfig.render_hosts("box")


def _cert(name: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def test_extra_certificates_are_the_hosts_cas_the_box_lacks() -> None:
    public, proxy = _cert("public root"), _cert("inspecting proxy")
    extras = boxconfig.extra_certificates(public + proxy, [public])
    assert list(extras.values()) == [proxy]


def test_write_changes_only_what_differs(tmp_path: Path) -> None:
    uid, gid = os.getuid(), os.getgid()
    assert boxconfig.write(tmp_path, "etc/x", "a\n", mode=0o600, uid=uid, gid=gid) is True
    assert boxconfig.write(tmp_path, "etc/x", "a\n", mode=0o600, uid=uid, gid=gid) is False
    assert boxconfig.write(tmp_path, "etc/x", "a\n", mode=0o640, uid=uid, gid=gid) is True
    assert (tmp_path / "etc/x").stat().st_mode & 0o777 == 0o640


def test_write_refuses_a_symlink_out_of_the_rootfs(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "root/home").mkdir(parents=True)
    (tmp_path / "root/home/.ssh").symlink_to(outside)
    with pytest.raises(ProviderError, match="outside its rootfs"):
        boxconfig.write(tmp_path / "root", "home/.ssh/authorized_keys", "key\n")
    assert not list(outside.iterdir())


def test_failed_command_says_which_how_and_what_to_do() -> None:
    with pytest.raises(ProviderError) as info:
        run(["sh", "-c", "echo boom >&2; exit 3"], hint="fix it and retry.")
    assert (
        str(info.value)
        == "`sh -c 'echo boom >&2; exit 3'` failed with exit status 3 (boom): fix it and retry."
    )
    assert "exit status 1:" in command_failed(["x"], 1, "", "retry.")
    with pytest.raises(ProviderError, match="is not installed"):
        run(["no-such-tool-mlops-box"], hint="")


def test_local_box_refuses_without_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(UnsupportedPlatform, match="sudo"):
        require_host()


def _settings(tmp_path: Path) -> LocalProvider:
    box = {"name": "box", "key": str(tmp_path / "key"), "local": {"root": str(tmp_path / "r")}}
    return LocalProvider(load_settings(box, project_dir=tmp_path))


def test_create_with_half_a_key_pair_says_how_to_mend_it_and_makes_nothing(
    tmp_path: Path,
) -> None:
    (tmp_path / "key").write_text("private half only")

    with pytest.raises(SshConfigError, match=r"key\.pub does not"):
        _settings(tmp_path).create()
    assert not (tmp_path / "r").exists()


def test_a_box_never_created_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(BoxNotFound, match=r"fab box\.create"):
        _settings(tmp_path).state()


def test_host_key_evidence_is_the_exact_keys_in_the_box_tree(tmp_path: Path) -> None:
    provider = _settings(tmp_path)
    ssh_dir = provider.rootfs / "etc/ssh"
    ssh_dir.mkdir(parents=True)
    for key_type in ("ed25519", "rsa"):
        path = ssh_dir / f"ssh_host_{key_type}_key"
        subprocess.run(["ssh-keygen", "-q", "-t", key_type, "-N", "", "-f", str(path)], check=True)
    # Not sshd's host key paths: not evidence.
    (ssh_dir / "ssh_host_ed25519_key.pub.bak").write_text("ssh-ed25519 AAAAold root@x\n")
    (ssh_dir / "impostor_key.pub").write_text("ssh-ed25519 AAAAimpostor root@x\n")

    evidence = provider.host_key_evidence(0)

    made = {tuple(p.read_text().split()[:2]) for p in sorted(ssh_dir.glob("ssh_host_*_key.pub"))}
    assert evidence.keys == made and len(made) == 2
    assert evidence.source == f"the local box's tree {provider.rootfs}"
    assert not evidence.fingerprints


def test_a_box_tree_without_host_keys_vouches_for_none(tmp_path: Path) -> None:
    provider = _settings(tmp_path)
    (provider.rootfs / "etc").mkdir(parents=True)

    evidence = provider.host_key_evidence(0)

    assert not evidence
    assert "fab box.create" in evidence.note


def test_ssh_banner_reads_the_identification_line() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def answer() -> None:
        conn, _ = server.accept()
        conn.sendall(b"SSH-2.0-OpenSSH_9.2p1 Debian\r\n")
        conn.close()

    thread = threading.Thread(target=answer)
    thread.start()
    assert ssh_banner("127.0.0.1", port) == "SSH-2.0-OpenSSH_9.2p1 Debian"
    thread.join()
    server.close()
    assert ssh_banner("127.0.0.1", port) is None
