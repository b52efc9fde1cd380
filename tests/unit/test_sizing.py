"""``drcheck size`` and the sizing arithmetic: figures worked out by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_drcheck.cli import main
from pytest_drcheck.sizing import (
    DEFAULT_HEADROOM,
    ThrottleFit,
    mbit_per_s,
    parse_bandwidth,
    parse_rate,
    parse_size,
    parse_throttle,
    size_link,
)


def test_sizes_are_decimal_or_binary_as_written() -> None:
    assert parse_size("20GB") == 20e9
    assert parse_size("20 GiB") == 20 * 2 ** 30
    assert parse_size("1.5TB") == 1.5e12
    assert parse_size("512mib") == 512 * 2 ** 20
    assert parse_size("4096") == 4096


@pytest.mark.parametrize("text", ["", "20XB", "-1GB", "GB", "1e9GB", "20GB/day"])
def test_a_size_that_is_not_one_names_the_forms(text: str) -> None:
    with pytest.raises(ValueError, match="10\\^9 bytes"):
        parse_size(text)


def test_rates_per_unit_of_time() -> None:
    assert parse_rate("20GB/day") == pytest.approx(20e9 / 86400)
    assert parse_rate("20GB") == pytest.approx(20e9 / 86400)  # a bare size is per day
    assert parse_rate("2MB/s") == 2e6
    assert parse_rate("360MB/h") == pytest.approx(1e5)
    with pytest.raises(ValueError, match="/s, /min, /h, /day"):
        parse_rate("2MB/week")


def test_the_seed_example_is_about_93_mbit() -> None:
    # 50 x 20 GB = 1000 GB/day = 8e12 bit / 86400 s = 92.59 Mbit/s.
    sizing = size_link(50, parse_rate("20GB/day"))
    assert sizing.average_mbit_per_s == pytest.approx(8e12 / 86400 / 1e6)
    assert round(sizing.average_mbit_per_s, 1) == 92.6
    assert sizing.with_headroom_mbit_per_s == pytest.approx(92.59259 * DEFAULT_HEADROOM)
    assert sizing.provision_mbit_per_s == 121  # 120.37 rounded up, never down


def test_binary_gigabytes_size_a_bigger_link() -> None:
    assert size_link(50, parse_rate("20GiB/day")).average_mbit_per_s == pytest.approx(
        50 * 20 * 2 ** 30 * 8 / 86400 / 1e6)  # 99.42 Mbit/s


def test_an_exact_whole_figure_is_not_rounded_up_past_itself() -> None:
    # 1 MB/s = 8 Mbit/s exactly; headroom 1 -> provision 8, not 9.
    assert size_link(1, 1e6, headroom=1.0).provision_mbit_per_s == 8
    assert mbit_per_s(125_000) == 1.0


@pytest.mark.parametrize(("servers", "rate", "headroom", "message"), [
    (0, 1.0, 1.3, "servers must be 1 or more"),
    (1, float("nan"), 1.3, "finite"),
    (1, 1.0, 0.5, "headroom must be a factor of 1 or more"),
])
def test_impossible_inputs_are_refused(servers: int, rate: float, headroom: float,
                                       message: str) -> None:
    with pytest.raises(ValueError, match=message):
        size_link(servers, rate, headroom)


def test_drcheck_size_prints_the_seed_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["size", "--servers", "50", "--writes-per-day", "20GB"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "50 servers x 20 GB/day each = 1000 GB/day (GB = 10^9 bytes)"
    assert out[1].startswith("average write rate: 92.6 Mbit/s (Mbit = 10^6 bits; rounded to "
                             "the nearest 0.1 Mbit/s)")
    assert "with headroom x1.3: 120.4 Mbit/s; provision at least 121 Mbit/s" in out[2]


def test_drcheck_size_with_a_per_second_rate_and_no_headroom(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["size", "--servers", "3", "--write-rate", "1MB/s", "--headroom", "1"]) == 0
    out = capsys.readouterr().out
    assert "average write rate: 24.0 Mbit/s" in out
    assert "provision at least 24 Mbit/s" in out


def test_drcheck_size_refuses_a_bad_size_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["size", "--servers", "50", "--writes-per-day", "20 gigs"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("drcheck size: '20 gigs' is not a size; write e.g. 20GB")
    assert "Traceback" not in err


@pytest.mark.parametrize(("text", "mbit"), [
    ("100Mbit/s", 100.0), ("1 Gbit/s", 1000.0), ("500Mbps", 500.0), ("2.5gbit/s", 2500.0),
    ("512kbit/s", 0.512), (100, 100.0), (0.5, 0.5)])
def test_link_bandwidths(text: str | float, mbit: float) -> None:
    assert parse_bandwidth(text) == pytest.approx(mbit)


@pytest.mark.parametrize("text", ["100", "100MB/s", "100MBps", "fast", "0Mbit/s", -1,
                                  float("inf"), True])
def test_a_bandwidth_that_is_not_one(text: object) -> None:
    with pytest.raises(ValueError, match="is not a bandwidth"):
        parse_bandwidth(text)  # type: ignore[arg-type]


def write_observations(directory: Path, *lines: dict[str, object]) -> None:
    (directory / "observations").mkdir(parents=True)
    (directory / "observations" / "app01.jsonl").write_text(
        "".join(json.dumps(line) + "\n" for line in lines))


def replication_observation(at: str, **sources: float) -> dict[str, object]:
    return {"key": "app01::replication[link]", "check": "replication", "observed_at": at,
            "details": {"basis": "window 10 s", "sources": {
                name: {"average_bytes_s": rate} for name, rate in sources.items()}}}


def test_drcheck_size_from_a_drill_s_measured_rates(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    write_observations(tmp_path, replication_observation("2026-12-01T09:00:00+00:00",
                                                         src01=1e6, src02=9e6),
                       {"check": "reach", "details": {}},
                       replication_observation("2026-12-01T10:00:00+00:00", src01=2e6))
    assert main(["size", "--from-evidence", str(tmp_path), "--headroom", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    # The latest observation of src01 (2 MB/s = 16 Mbit/s) and src02's 72 Mbit/s.
    assert out[:2] == ["measured src01: 16.00 Mbit/s average (window 10 s)",
                       "measured src02: 72.00 Mbit/s average (window 10 s)"]
    assert "average write rate: 88.0 Mbit/s" in out[3]
    # Scaled to 50 servers writing their average (5.5 MB/s each).
    assert main(["size", "--from-evidence", str(tmp_path), "--servers", "50",
                 "--headroom", "1"]) == 0
    assert "average write rate: 2200.0 Mbit/s" in capsys.readouterr().out


def test_drcheck_size_without_measurements_says_what_to_run(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_observations(tmp_path, {"check": "reach", "details": {}})
    assert main(["size", "--from-evidence", str(tmp_path)]) == 1
    assert "has no replication check observation" in capsys.readouterr().err
    assert main(["size", "--servers", "3"]) == 2
    assert "give --servers and --writes-per-day" in capsys.readouterr().err


# --- DRS's bandwidth throttle ---------------------------------------------------------------


@pytest.mark.parametrize(("text", "mbit"), [
    ("50Mbit/s", 50.0), ("1Gbit/s", 1000.0), (50, 50.0), ("0", None), (0, None),
    ("0Mbit/s", None), ("0.0 Mbps", None)])
def test_throttles_and_drs_s_zero_for_none(text: str | int, mbit: float | None) -> None:
    assert parse_throttle(text) == mbit


@pytest.mark.parametrize("text", ["50MB/s", "-5Mbit/s", "fast"])
def test_a_throttle_that_is_not_a_bandwidth(text: str) -> None:
    with pytest.raises(ValueError, match="is not a bandwidth"):
        parse_throttle(text)


@pytest.mark.parametrize(("throttle", "verdict"), [
    (None, "unthrottled"), (49.9, "too low"), (50.0, "tight"), (64.9, "tight"),
    (65.0, "fits"), (1000.0, "fits")])
def test_throttle_fit_per_server(throttle: float | None, verdict: str) -> None:
    # 50 Mbit/s on average, x1.3 -> 65 Mbit/s with headroom.
    fit = ThrottleFit(throttle, 50.0, 1.3)
    assert fit.needed_mbit_per_s == pytest.approx(65.0)
    assert fit.verdict == verdict


def test_drcheck_size_seed_example_with_a_50_mbit_throttle(
        capsys: pytest.CaptureFixture[str]) -> None:
    # The throttle is per source server: each writes 20 GB/day = 1.85 Mbit/s, well under 50.
    assert main(["size", "--servers", "50", "--writes-per-day", "20GB",
                 "--throttle", "50Mbit/s"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[3:] == [
        "DRS throttle: 50 Mbit/s per source server (bandwidthThrottling applies to each "
        "server's replication agent); each server writes 1.85 Mbit/s on average, 2.41 Mbit/s "
        "with headroom x1.3",
        "the throttle fits: it is at least each server's rate with headroom"]


def test_drcheck_size_says_a_throttle_is_too_low(capsys: pytest.CaptureFixture[str]) -> None:
    # One server writing 1000 GB/day = 92.59 Mbit/s; x1.3 = 120.37, raised to 121.
    assert main(["size", "--servers", "1", "--writes-per-day", "1000GB",
                 "--throttle", "50Mbit/s"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "the throttle is too low: below each server's average write rate, replication lags "
        "and the RPO grows; raise it to 121 Mbit/s")
    assert main(["size", "--servers", "1", "--writes-per-day", "1000GB",
                 "--throttle", "100Mbit/s"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "the throttle fits the average but not the headroom: replication falls behind at "
        "peaks; raise it to 121 Mbit/s")
    assert main(["size", "--servers", "1", "--writes-per-day", "1000GB", "--throttle", "0"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "DRS throttle: none (0 = not throttled): only the link limits replication")


def test_drcheck_size_refuses_a_throttle_in_bytes(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["size", "--servers", "1", "--writes-per-day", "1GB",
                 "--throttle", "50MB/s"]) == 2
    assert capsys.readouterr().err.startswith("drcheck size: '50MB/s' is not a bandwidth")
    write_observations(tmp_path, replication_observation("2026-12-01T10:00:00+00:00",
                                                         src01=2e6))
    assert main(["size", "--from-evidence", str(tmp_path), "--throttle", "50MB/s"]) == 2
    assert main(["size", "--from-evidence", str(tmp_path), "--throttle", "10Mbit/s",
                 "--headroom", "1"]) == 0
    # src01 writes 2 MB/s = 16 Mbit/s: a 10 Mbit/s throttle is too low.
    assert capsys.readouterr().out.splitlines()[-1].startswith(
        "the throttle is too low: below each server's average write rate")
