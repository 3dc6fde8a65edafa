"""Rank tables: generation (hccn.conf or given IPs), the hccl_tools format, validation errors, servers."""

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hydra_plugins.birealnet_launchers import rank_table as rt
from launcher_testing import DEVICE_IPS


def two_servers() -> dict[str, Any]:
    a = rt.build_rank_table("0-1", DEVICE_IPS, server_id="10.0.0.1")
    b = rt.build_rank_table("0-1", ["192.168.100.102", "192.168.101.102"], server_id="10.0.0.2")
    return rt.merge_rank_tables([a, b])


def test_generated_table_is_the_hccl_tools_format() -> None:
    table = rt.build_rank_table([0, 1], DEVICE_IPS, server_id="10.0.0.1")
    assert table == {
        "version": "1.0",
        "server_count": "1",
        "server_list": [
            {
                "server_id": "10.0.0.1",
                "device": [
                    {"device_id": "0", "device_ip": "192.168.100.101", "rank_id": "0"},
                    {"device_id": "1", "device_ip": "192.168.101.101", "rank_id": "1"},
                ],
                "host_nic_ip": "reserve",
            }
        ],
        "status": "completed",
    }


def test_device_ips_from_hccn_conf(tmp_path: Path) -> None:
    conf = tmp_path / "hccn.conf"
    conf.write_text(
        "address_0=192.168.100.101\nnetmask_0=255.255.255.0\naddress_1=192.168.101.101\n"
        "address_4=192.168.100.100\n"
    )
    assert rt.read_hccn_conf(conf) == {0: "192.168.100.101", 1: "192.168.101.101", 4: "192.168.100.100"}
    table = rt.build_rank_table("0,4", hccn_conf=conf, server_id="10.0.0.1")
    assert [(d["device_id"], d["device_ip"], d["rank_id"]) for d in table["server_list"][0]["device"]] == [
        ("0", "192.168.100.101", "0"),
        ("4", "192.168.100.100", "1"),
    ]
    with pytest.raises(rt.RankTableError, match=r"no address_N line for devices \[2\]"):
        rt.build_rank_table([0, 2], hccn_conf=conf)
    with pytest.raises(rt.RankTableError, match="device_ips"):
        rt.build_rank_table([0], hccn_conf=tmp_path / "missing.conf")


def test_generation_errors() -> None:
    with pytest.raises(rt.RankTableError, match="1 device_ips for 2 devices"):
        rt.build_rank_table([0, 1], ["192.168.100.101"])
    with pytest.raises(rt.RankTableError, match="repeat"):
        rt.build_rank_table([0, 0], DEVICE_IPS)
    with pytest.raises(rt.RankTableError, match="not an IP address"):
        rt.build_rank_table([0, 1], ["192.168.100.101", "nope"])
    assert rt.parse_devices("0-3,6") == [0, 1, 2, 3, 6]


def test_merge_numbers_ranks_across_servers_in_order() -> None:
    entries = rt.validate_rank_table(two_servers())
    assert [(e.rank_id, e.server_index, e.device_id) for e in entries] == [
        (0, 0, 0),
        (1, 0, 1),
        (2, 1, 0),
        (3, 1, 1),
    ]


def broken(change: Any) -> dict[str, Any]:
    table = copy.deepcopy(rt.build_rank_table([0, 1], DEVICE_IPS, server_id="10.0.0.1"))
    change(table)
    return table


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda t: t.pop("status"), "no 'status' key"),
        (lambda t: t.update(status="initializing"), "status is 'initializing'"),
        (
            lambda t: t.update(server_count="2"),
            'server_count is .2. but server_list has 1 servers: set "server_count": "1"',
        ),
        (lambda t: t.update(server_count=1), "server_count is 1 .a int.: every value must be a JSON string"),
        (lambda t: t["server_list"][0]["device"][1].update(rank_id=1), "device 1 rank_id is 1 .a int."),
        (
            lambda t: t["server_list"][0]["device"][1].update(rank_id="0"),
            r"rank_id \[0\] used more than once",
        ),
        (lambda t: t["server_list"][0]["device"][1].update(rank_id="2"), r"rank ids \[0, 2\] are not 0..1"),
        (lambda t: t["server_list"][0]["device"][1].update(device_id="0"), "lists device_id 0 twice"),
        (lambda t: t["server_list"][0]["device"][0].pop("device_ip"), "device 0 has no 'device_ip'"),
        (lambda t: t["server_list"][0].update(device=[]), "server 0 has no devices"),
        (lambda t: t.update(server_list={}), "server_list is empty or not a list"),
    ],
)
def test_validation_names_the_problem_and_the_fix(change: Any, message: str) -> None:
    with pytest.raises(rt.RankTableError, match=message) as info:
        rt.validate_rank_table(broken(change))
    assert "\n" not in str(info.value)


def test_load_checks_json_and_device_count(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": "1.0",')
    with pytest.raises(rt.RankTableError, match="not valid JSON"):
        rt.load_rank_table(bad)
    with pytest.raises(rt.RankTableError, match="does not exist"):
        rt.load_rank_table(tmp_path / "missing.json")
    good = rt.write_rank_table(two_servers(), tmp_path / "four.json")
    assert len(rt.validate_rank_table(rt.load_rank_table(good, num_devices=4))) == 4
    with pytest.raises(rt.RankTableError, match="4 devices but 8 expected"):
        rt.load_rank_table(good, num_devices=8)


def test_this_servers_ranks_by_host_address_or_index() -> None:
    table = two_servers()
    mine = rt.local_ranks(table, addresses={"10.0.0.2", "myhost"})
    assert [(e.rank_id, e.device_id) for e in mine] == [(2, 0), (3, 1)]
    assert [e.rank_id for e in rt.local_ranks(table, server_index=0, addresses=set())] == [0, 1]
    with pytest.raises(rt.RankTableError, match="set hydra.launcher.server_index=N"):
        rt.local_ranks(table, addresses={"10.9.9.9"})
    with pytest.raises(rt.RankTableError, match="server_index 2 is out of range"):
        rt.local_ranks(table, server_index=2)
    one = rt.build_rank_table([0, 1], DEVICE_IPS, server_id="node_0")
    assert len(rt.local_ranks(one, addresses={"10.9.9.9"})) == 2  # a one-server table is this server


def test_command_line(tmp_path: Path) -> None:
    out = tmp_path / "rt.json"
    cmd = [sys.executable, "-m", "hydra_plugins.birealnet_launchers.rank_table"]
    done = subprocess.run(
        cmd
        + [
            "--devices",
            "0-1",
            "--device-ips",
            ",".join(DEVICE_IPS),
            "--server-id",
            "10.0.0.1",
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text())["server_list"][0]["device"][1]["device_ip"] == DEVICE_IPS[1]
    check = subprocess.run(cmd + ["--check", str(out)], capture_output=True, text=True)
    assert "rank 1: server 0 (10.0.0.1) device 1 192.168.101.101" in check.stdout
    bad = subprocess.run(
        cmd + ["--devices", "0-1", "--device-ips", "1.2.3.4"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and bad.stderr.startswith("error: 1 device_ips for 2 devices")
