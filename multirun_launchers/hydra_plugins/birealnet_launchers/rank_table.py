"""Ascend rank tables (the hccl_tools JSON format): generate, merge, validate, and pick this server's ranks.

Standard library only: Hydra's plugin scan imports this module. Also a small command line tool:
`python -m hydra_plugins.birealnet_launchers.rank_table --devices 0-7 -o rank_table.json`.
"""

import argparse
import ipaddress
import json
import re
import socket
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HCCN_CONF = "/etc/hccn.conf"
_TOP_KEYS = ("version", "server_count", "server_list", "status")
_DEVICE_KEYS = ("device_id", "device_ip", "rank_id")


class RankTableError(ValueError):
    """A rank table that cannot be used; the message names the problem and the fix in one line."""


@dataclass(frozen=True)
class RankEntry:
    """One device of a rank table."""

    rank_id: int
    device_id: int
    device_ip: str
    server_index: int
    server_id: str


def read_hccn_conf(path: str | Path = HCCN_CONF) -> dict[int, str]:
    """Device IPs from the `address_N=IP` lines of an hccn.conf file, by device id."""
    path = Path(path)
    if not path.is_file():
        raise RankTableError(
            f"no {path}: give the device IPs with hydra.launcher.device_ips=[...] (or run "
            f"`hccn_tool -i N -ip -g` on the server to configure them)"
        )
    addresses: dict[int, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.fullmatch(r"\s*address_(\d+)\s*=\s*(\S+)\s*", line)
        if match:
            addresses[int(match.group(1))] = match.group(2)
    return addresses


def parse_devices(spec: str | int | Iterable[int | str]) -> list[int]:
    """Device ids from `"0-7"`, `"0,2,4"`, `3` or a list of ints."""
    if isinstance(spec, int):
        return [spec]
    if isinstance(spec, str):
        devices: list[int] = []
        for part in spec.replace(" ", "").split(","):
            if not part:
                continue
            if re.fullmatch(r"\d+-\d+", part):
                first, last = (int(x) for x in part.split("-"))
                devices.extend(range(first, last + 1))
            elif part.isdigit():
                devices.append(int(part))
            else:
                raise RankTableError(f"bad device list {spec!r}: use ids like 0-7 or 0,1,2,3")
        return devices
    return [int(d) for d in spec]


def host_addresses() -> set[str]:
    """This host's names and IPv4 addresses, to find its server in a rank table."""
    names = {socket.gethostname(), socket.getfqdn(), "localhost", "127.0.0.1"}
    addresses = set(names)
    for name in names:
        try:
            addresses.update(socket.gethostbyname_ex(name)[2])
        except OSError:
            pass
    primary = primary_ip()
    if primary:
        addresses.add(primary)
    return {a for a in addresses if a}


def primary_ip() -> str | None:
    """The IPv4 address of the interface that routes outwards (no packet is sent)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.connect(("10.255.255.255", 1))
        return str(sock.getsockname()[0])
    except OSError:
        return None
    finally:
        sock.close()


def build_rank_table(
    devices: str | Iterable[int],
    device_ips: Sequence[str] | Mapping[int, str] | None = None,
    server_id: str | None = None,
    hccn_conf: str | Path = HCCN_CONF,
) -> dict[str, Any]:
    """A one-server rank table for `devices` (ranks 0..n-1 in device order), as hccl_tools writes it.

    Device IPs come from `device_ips` (a list aligned with `devices`, or a dict by device id) or else
    from the `address_N=` lines of `hccn_conf`; `server_id` defaults to this host's IP.
    """
    device_list = parse_devices(devices)
    if not device_list:
        raise RankTableError("no devices to build a rank table from: set hydra.launcher.devices=[0,1,...]")
    if len(set(device_list)) != len(device_list):
        raise RankTableError(f"devices {device_list} repeat an id: list each device once")
    if device_ips is None:
        ips = read_hccn_conf(hccn_conf)
        missing = [d for d in device_list if d not in ips]
        if missing:
            raise RankTableError(
                f"{hccn_conf} has no address_N line for devices {missing}: configure them with hccn_tool "
                f"or give hydra.launcher.device_ips=[...]"
            )
    elif isinstance(device_ips, Mapping):
        ips = {int(k): str(v) for k, v in device_ips.items()}
        missing = [d for d in device_list if d not in ips]
        if missing:
            raise RankTableError(f"device_ips has no IP for devices {missing}: give one per device")
    else:
        ip_list = [str(ip) for ip in device_ips]
        if len(ip_list) != len(device_list):
            raise RankTableError(
                f"{len(ip_list)} device_ips for {len(device_list)} devices: give exactly one IP per device, "
                f"in the order of hydra.launcher.devices"
            )
        ips = dict(zip(device_list, ip_list, strict=True))
    server = server_id or primary_ip() or "127.0.0.1"
    table = {
        "version": "1.0",
        "server_count": "1",
        "server_list": [
            {
                "server_id": str(server),
                "device": [
                    {"device_id": str(d), "device_ip": ips[d], "rank_id": str(rank)}
                    for rank, d in enumerate(device_list)
                ],
                "host_nic_ip": "reserve",
            }
        ],
        "status": "completed",
    }
    validate_rank_table(table, source="generated rank table")
    return table


def merge_rank_tables(tables: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One table holding the servers of `tables` in order, ranks renumbered across servers."""
    servers: list[dict[str, Any]] = []
    rank = 0
    for table in tables:
        validate_rank_table(table)
        for server in table["server_list"]:
            devices = sorted(server["device"], key=lambda d: int(d["rank_id"]))
            renumbered = []
            for device in devices:
                renumbered.append({**device, "rank_id": str(rank)})
                rank += 1
            servers.append({**server, "device": renumbered})
    merged = {
        "version": "1.0",
        "server_count": str(len(servers)),
        "server_list": servers,
        "status": "completed",
    }
    validate_rank_table(merged, source="merged rank table")
    return merged


def load_rank_table(path: str | Path, num_devices: int | None = None) -> dict[str, Any]:
    """Read and validate a rank table file; `num_devices`, when given, is the expected total rank count."""
    path = Path(path)
    if not path.is_file():
        raise RankTableError(
            f"rank table {path} does not exist: set hydra.launcher.rank_table (or RANK_TABLE_FILE) to the "
            f"JSON written by hccl_tools, or hydra.launcher.devices=[...] to generate one"
        )
    try:
        table = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise RankTableError(
            f"rank table {path} is not valid JSON ({e.msg} at line {e.lineno}): fix or regenerate it"
        ) from None
    validate_rank_table(table, source=f"rank table {path}", num_devices=num_devices)
    return table


def validate_rank_table(
    table: Any, source: str = "rank table", num_devices: int | None = None
) -> list[RankEntry]:
    """Check the hccl_tools format; return all devices in rank order, or raise RankTableError."""

    def fail(problem: str, fix: str) -> RankTableError:
        return RankTableError(f"{source}: {problem}: {fix}")

    if not isinstance(table, Mapping):
        raise fail(f"the top level is a {type(table).__name__}", "it must be a JSON object")
    for key in _TOP_KEYS:
        if key not in table:
            raise fail(f"no {key!r} key", f"add it (keys: {', '.join(_TOP_KEYS)})")
    for key in ("version", "server_count", "status"):
        _require_string(table[key], key, fail)
    if table["status"] != "completed":
        raise fail(f"status is {table['status']!r}", 'set "status": "completed" once the table is complete')
    servers = table["server_list"]
    if not isinstance(servers, list) or not servers:
        raise fail("server_list is empty or not a list", "list one object per server")
    if not table["server_count"].isdigit() or int(table["server_count"]) != len(servers):
        raise fail(
            f"server_count is {table['server_count']!r} but server_list has {len(servers)} servers",
            f'set "server_count": "{len(servers)}"',
        )
    entries: list[RankEntry] = []
    server_ids: set[str] = set()
    for s, server in enumerate(servers):
        where = f"server {s}"
        if not isinstance(server, Mapping):
            raise fail(f"{where} is a {type(server).__name__}", "each server must be a JSON object")
        for key in ("server_id", "device"):
            if key not in server:
                raise fail(f"{where} has no {key!r}", f"add {key!r} to every server")
        _require_string(server["server_id"], f"{where} server_id", fail)
        if "host_nic_ip" in server:
            _require_string(server["host_nic_ip"], f"{where} host_nic_ip", fail)
        if server["server_id"] in server_ids:
            raise fail(f"server_id {server['server_id']!r} appears twice", "give every server its own id")
        server_ids.add(server["server_id"])
        devices = server["device"]
        if not isinstance(devices, list) or not devices:
            raise fail(f"{where} has no devices", 'list its devices under "device"')
        device_ids: set[int] = set()
        for d, device in enumerate(devices):
            at = f"{where} device {d}"
            if not isinstance(device, Mapping):
                raise fail(f"{at} is a {type(device).__name__}", "each device must be a JSON object")
            for key in _DEVICE_KEYS:
                if key not in device:
                    raise fail(f"{at} has no {key!r}", f"give every device {', '.join(_DEVICE_KEYS)}")
                _require_string(device[key], f"{at} {key}", fail)
            for key in ("device_id", "rank_id"):
                if not device[key].isdigit():
                    raise fail(
                        f"{at} {key} is {device[key]!r}", f"{key} must be a non-negative integer string"
                    )
            _require_ip(device["device_ip"], f"{at} device_ip", fail)
            device_id = int(device["device_id"])
            if device_id in device_ids:
                raise fail(f"{where} lists device_id {device_id} twice", "list each device of a server once")
            device_ids.add(device_id)
            entries.append(
                RankEntry(int(device["rank_id"]), device_id, device["device_ip"], s, server["server_id"])
            )
    ranks = sorted(e.rank_id for e in entries)
    duplicates = sorted({r for r in ranks if ranks.count(r) > 1})
    if duplicates:
        raise fail(f"rank_id {duplicates} used more than once", "number the ranks 0..N-1, each once")
    if ranks != list(range(len(ranks))):
        raise fail(f"rank ids {ranks} are not 0..{len(ranks) - 1}", "number the ranks 0..N-1 without gaps")
    if num_devices is not None and len(entries) != int(num_devices):
        raise fail(
            f"{len(entries)} devices but {num_devices} expected",
            "use a table with that many devices or change the expected device count",
        )
    return sorted(entries, key=lambda e: e.rank_id)


def local_ranks(
    table: Mapping[str, Any],
    server_index: int | None = None,
    addresses: set[str] | None = None,
    source: str = "rank table",
) -> list[RankEntry]:
    """The ranks of this server: `server_index` if given, else the server whose server_id is one of this
    host's addresses (a one-server table is always this server)."""
    entries = validate_rank_table(table, source=source)
    servers = table["server_list"]
    if server_index is not None:
        if not 0 <= int(server_index) < len(servers):
            raise RankTableError(
                f"{source}: server_index {server_index} is out of range: the table has {len(servers)} "
                f"servers (0..{len(servers) - 1})"
            )
        index = int(server_index)
    elif len(servers) == 1:
        index = 0
    else:
        addresses = host_addresses() if addresses is None else addresses
        matches = [s for s, server in enumerate(servers) if server["server_id"] in addresses]
        if len(matches) != 1:
            ids = [server["server_id"] for server in servers]
            found = "none" if not matches else f"{len(matches)}"
            raise RankTableError(
                f"{source}: {found} of its servers {ids} match this host ({', '.join(sorted(addresses))}): "
                f"set hydra.launcher.server_index=N for this server"
            )
        index = matches[0]
    return [e for e in entries if e.server_index == index]


def write_rank_table(table: Mapping[str, Any], path: str | Path) -> Path:
    """Write `table` as indented JSON; return the absolute path."""
    path = Path(path).absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(table, indent=4) + "\n", encoding="utf-8")
    return path


def _require_string(value: Any, what: str, fail: Any) -> None:
    if not isinstance(value, str):
        raise fail(
            f"{what} is {json.dumps(value)} (a {type(value).__name__})", "every value must be a JSON string"
        )


def _require_ip(value: str, what: str, fail: Any) -> None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise fail(
            f"{what} {value!r} is not an IP address", "use the device's address from /etc/hccn.conf"
        ) from None


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: generate (from devices and hccn.conf), merge, or check rank tables."""
    parser = argparse.ArgumentParser(
        prog="python -m hydra_plugins.birealnet_launchers.rank_table", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--devices", help="device ids to generate a table for, e.g. 0-7")
    parser.add_argument(
        "--device-ips", help="comma-separated IPs, one per device (default: from --hccn-conf)"
    )
    parser.add_argument("--hccn-conf", default=HCCN_CONF)
    parser.add_argument("--server-id", help="this server's IP (default: the host's primary IP)")
    parser.add_argument("--merge", nargs="+", metavar="TABLE", help="merge one-server tables, in order")
    parser.add_argument("--check", metavar="TABLE", help="validate a table and print its ranks")
    parser.add_argument("-o", "--output", help="write here instead of stdout")
    args = parser.parse_args(argv)
    try:
        if args.check:
            table = load_rank_table(args.check)
            for e in validate_rank_table(table):
                where = f"server {e.server_index} ({e.server_id}) device {e.device_id}"
                print(f"rank {e.rank_id}: {where} {e.device_ip}")
            return 0
        if args.merge:
            table = merge_rank_tables([load_rank_table(p) for p in args.merge])
        elif args.devices:
            ips = args.device_ips.split(",") if args.device_ips else None
            table = build_rank_table(args.devices, ips, args.server_id, args.hccn_conf)
        else:
            parser.error("give --devices, --merge or --check")
    except RankTableError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.output:
        print(write_rank_table(table, args.output))
    else:
        print(json.dumps(table, indent=4))
    return 0


if __name__ == "__main__":
    sys.exit(main())
