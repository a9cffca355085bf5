"""The systemd units, their install script and the nginx example.

The templates in systemd/ are rendered with systemd/install.sh for this checkout into a temporary
directory, then checked with systemd's own tools:

- `systemd-analyze verify` prints nothing at all: any warning is a failure;
- `systemd-analyze calendar` accepts every OnCalendar= of every timer;
- `systemd-analyze security --offline=true` rates each service at an exposure of 2.0 or less.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from datetime import datetime
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SYSTEMD_DIR = ROOT / "systemd"
INSTALL = SYSTEMD_DIR / "install.sh"
SERVICES = ["mp-collector.service", "mp-datasette.service"]
TIMERS = ["mp-collector.timer"]
UNITS = SERVICES + TIMERS
MAX_EXPOSURE = 2.0
PLACEHOLDER = re.compile(r"@[A-Z_]+@")

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
pytestmark = pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed")


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYSTEMD_")}
    env["TZ"] = "UTC"
    env["LC_ALL"] = "C"
    return env


def analyze(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([SYSTEMD_ANALYZE, "--no-pager", *args], capture_output=True, text=True,
                          timeout=60, env=clean_env(), cwd=cwd)


def run_install(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", str(INSTALL), *args], capture_output=True, text=True, timeout=60,
                          env=clean_env())


def render(dest: Path, *extra: str) -> tuple[Path, subprocess.CompletedProcess]:
    env_file = dest.parent / (dest.name + "-etc") / "mp-dashboard" / "env"
    result = run_install("--app-dir", str(ROOT), "--dest", str(dest), "--no-user",
                         "--env-file", str(env_file), *extra)
    assert result.returncode == 0, result.stdout + result.stderr
    return env_file, result


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """Units rendered for this checkout, as `install.sh --dest DIR --no-user` leaves them."""
    base = tmp_path_factory.mktemp("systemd")
    env_file, result = render(base / "units")
    return base / "units", env_file, result


@pytest.fixture(scope="module")
def installed_credentials(tmp_path_factory):
    """The same, plus the LoadCredential= drop-ins (`install.sh --credentials`)."""
    base = tmp_path_factory.mktemp("systemd-cred")
    render(base / "units", "--credentials")
    return base / "units"


def unit_values(path: Path) -> dict[str, list[str]]:
    """Key -> values of a unit file, continuation lines joined, comments dropped."""
    values: dict[str, list[str]] = {}
    logical = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not logical and (not line or line.startswith(("#", ";", "["))):
            continue
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        logical += line
        key, _, value = logical.partition("=")
        values.setdefault(key.strip(), []).append(value.strip())
        logical = ""
    return values


def need_binaries():
    missing = [b for b in ("mp-collector", "datasette") if not os.access(ROOT / ".venv/bin" / b, os.X_OK)]
    if missing:
        pytest.skip(f"no {', '.join(missing)} in {ROOT / '.venv/bin'} (pip install -e .): "
                    "verify would only complain about the missing ExecStart= binaries")


# --- install.sh -----------------------------------------------------------------------------------

def test_install_renders_every_unit_without_placeholders(installed):
    dest, _env_file, result = installed
    assert sorted(p.name for p in dest.iterdir()) == sorted(UNITS)
    for name in UNITS:
        text = (dest / name).read_text()
        assert not PLACEHOLDER.search(text), f"{name}: {PLACEHOLDER.findall(text)}"
        assert stat.S_IMODE((dest / name).stat().st_mode) == 0o644
    collector = unit_values(dest / "mp-collector.service")
    assert collector["ExecStart"] == [f"{ROOT}/.venv/bin/mp-collector run --trigger timer"]
    assert collector["User"] == ["mp-dashboard"]
    assert "systemctl enable --now mp-collector.timer mp-datasette.service" in result.stdout


def test_install_creates_a_root_only_env_file_from_the_example(installed):
    _dest, env_file, _result = installed
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(env_file.parent.stat().st_mode) == 0o700
    text = env_file.read_text()
    example = ROOT / ".env.example"
    if example.exists():
        assert "WB_API_TOKEN=" in text
    # The units set these; a value in the EnvironmentFile= would override them.
    assert not re.search(r"^(DATABASE_PATH|ALIASES_FILE)=", text, re.M)


def test_install_keeps_an_existing_env_file(tmp_path):
    env_file = tmp_path / "env"
    env_file.write_text("WB_API_TOKEN=secret\n")
    result = run_install("--dest", str(tmp_path / "units"), "--no-user", "--env-file", str(env_file))
    assert result.returncode == 0, result.stderr
    assert env_file.read_text() == "WB_API_TOKEN=secret\n"
    assert "left as it is" in result.stdout


def test_install_refuses_paths_systemd_would_misread(tmp_path):
    odd = tmp_path / "with space"
    odd.mkdir()
    result = run_install("--app-dir", str(odd), "--dest", str(tmp_path / "u"), "--no-user", "--no-env-file")
    assert result.returncode != 0
    assert "characters" in result.stderr
    assert not (tmp_path / "u").exists()
    result = run_install("--bogus")
    assert result.returncode != 0 and "unknown option" in result.stderr


def test_install_credentials_dropins(installed_credentials):
    dest = installed_credentials
    for unit in ("mp-collector", "mp-datasette"):
        dropin = dest / f"{unit}.service.d" / "50-credentials.conf"
        values = unit_values(dropin)
        assert values["EnvironmentFile"] == [""]
        assert values["LoadCredential"][0].startswith("mp-dashboard.env:/")
        assert values["ExecStart"][0] == "" and "%d/mp-dashboard.env" in values["ExecStart"][1]
        assert not PLACEHOLDER.search(dropin.read_text())
    # The viewer keeps the main unit's options: only where its variables come from changes.
    main = unit_values(dest / "mp-datasette.service")["ExecStart"][0]
    dropin = unit_values(dest / "mp-datasette.service.d" / "50-credentials.conf")["ExecStart"][1]
    assert dropin == main.replace("/mp-collector serve", "/mp-collector --env-file %d/mp-dashboard.env serve")


# --- what the units say ---------------------------------------------------------------------------

def test_both_services_share_one_static_user_and_the_database(installed):
    dest = installed[0]
    collector = unit_values(dest / "mp-collector.service")
    datasette = unit_values(dest / "mp-datasette.service")
    for values in (collector, datasette):
        assert "DynamicUser" not in values
        assert values["User"] == values["Group"] == ["mp-dashboard"]
        assert values["StateDirectory"] == ["mp-dashboard"]
        assert values["EnvironmentFile"] and values["EnvironmentFile"][0].endswith("/mp-dashboard/env")
        assert "DATABASE_PATH=/var/lib/mp-dashboard/mp.db" in values["Environment"]
        for key, value in {"ProtectSystem": "strict", "NoNewPrivileges": "yes", "ProtectHome": "yes",
                           "PrivateTmp": "yes", "MemoryDenyWriteExecute": "yes", "CapabilityBoundingSet": "",
                           "UMask": "0027", "SystemCallArchitectures": "native"}.items():
            assert values[key] == [value], key
        assert "@system-service" in values["SystemCallFilter"]
    assert collector["Type"] == ["oneshot"]
    assert collector["TimeoutStartSec"] == ["8min"]
    assert datasette["Restart"] == ["on-failure"]
    exec_start = datasette["ExecStart"][0]
    assert exec_start == f"{ROOT}/.venv/bin/mp-collector serve --host 127.0.0.1 --port 8001 --behind-proxy"
    assert datasette["IPAddressAllow"] == ["localhost"] and datasette["IPAddressDeny"] == ["any"]


def test_timer_every_ten_minutes_with_catch_up_and_jitter():
    values = unit_values(SYSTEMD_DIR / "mp-collector.timer")
    assert values["OnCalendar"] == ["*:0/10"]
    assert values["Persistent"] == ["true"]
    assert values["RandomizedDelaySec"] and values["AccuracySec"]
    assert values["Unit"] == ["mp-collector.service"]
    assert values["WantedBy"] == ["timers.target"]


# --- systemd-analyze ------------------------------------------------------------------------------

def test_verify_prints_nothing(installed):
    need_binaries()
    dest = installed[0]
    result = analyze("verify", *(str(dest / u) for u in UNITS), cwd=dest)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_verify_with_the_credentials_dropins_prints_nothing(installed_credentials):
    need_binaries()
    dest = installed_credentials
    result = analyze("verify", *(str(dest / u) for u in UNITS), cwd=dest)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_verify_would_report_a_warning(installed, tmp_path):
    """The check above is worth something: a unit with a mistake does make verify speak."""
    need_binaries()
    broken = tmp_path / "mp-collector.service"
    broken.write_text((installed[0] / "mp-collector.service").read_text().replace(
        "ProtectHome=yes", "ProtectHome=yes\nProtectHomeTypo=yes"))
    result = analyze("verify", str(broken), cwd=tmp_path)
    assert "ProtectHomeTypo" in result.stdout + result.stderr


def on_calendar_specs() -> list[tuple[str, str]]:
    specs = [(timer.name, spec) for timer in sorted(SYSTEMD_DIR.glob("*.timer"))
             for spec in unit_values(timer).get("OnCalendar", []) if spec]
    assert specs, "no OnCalendar= in systemd/*.timer"
    return specs


@pytest.mark.parametrize("timer,spec", on_calendar_specs())
def test_calendar_specs_parse(timer, spec):
    result = analyze("calendar", "--iterations=3", spec)
    assert result.returncode == 0, f"{timer}: {result.stderr}"
    assert "Normalized form:" in result.stdout
    if timer == "mp-collector.timer":
        stamps = re.findall(r"(?:Next elapse|Iter\. #\d+): \w+ (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC",
                            result.stdout)
        times = [datetime.strptime(s, "%Y-%m-%d %H:%M:%S") for s in stamps]
        assert len(times) == 3
        assert {(b - a).total_seconds() for a, b in zip(times, times[1:])} == {600.0}
        assert all(t.minute % 10 == 0 and t.second == 0 for t in times)


def exposure(unit_path: Path) -> float:
    result = analyze("security", "--offline=true", str(unit_path), cwd=unit_path.parent)
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", result.stdout)
    assert match, result.stdout + result.stderr
    return float(match.group(1))


@pytest.mark.parametrize("service", SERVICES)
def test_security_exposure(installed, service):
    level = exposure(installed[0] / service)
    assert level <= MAX_EXPOSURE, f"{service}: exposure {level} > {MAX_EXPOSURE}"


@pytest.mark.parametrize("service", SERVICES)
def test_security_exposure_with_credentials(installed_credentials, service):
    level = exposure(installed_credentials / service)
    assert level <= MAX_EXPOSURE, f"{service}: exposure {level} > {MAX_EXPOSURE}"


# --- nginx ----------------------------------------------------------------------------------------

NGINX_EXAMPLE = SYSTEMD_DIR / "nginx-mp-dashboard.conf.example"


def test_nginx_example_proxies_to_datasette_with_tls():
    text = NGINX_EXAMPLE.read_text()
    assert "proxy_pass http://127.0.0.1:8001;" in text
    for needed in ("listen 443 ssl", "ssl_certificate ", "ssl_certificate_key ", "return 301 https://",
                   "proxy_set_header Host", "proxy_set_header X-Forwarded-For",
                   "proxy_set_header X-Forwarded-Proto", "Strict-Transport-Security"):
        assert needed in text, needed


@pytest.mark.skipif(not (shutil.which("nginx") or Path("/usr/sbin/nginx").exists()) or not shutil.which("openssl"),
                    reason="nginx or openssl is not installed")
def test_nginx_example_passes_nginx_t(tmp_path):
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=dash.example.ru", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    site = NGINX_EXAMPLE.read_text()
    site = site.replace("/etc/letsencrypt/live/dash.example.ru/fullchain.pem", str(cert))
    site = site.replace("/etc/letsencrypt/live/dash.example.ru/privkey.pem", str(key))
    (tmp_path / "site.conf").write_text(site)
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{\n  access_log off;\n  include {tmp_path}/site.conf;\n}}\n")
    result = subprocess.run([nginx, "-t", "-q", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
                            capture_output=True, text=True, timeout=60)
    if result.returncode != 0 and "Permission denied" in result.stderr:
        pytest.skip(f"nginx -t cannot run here: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr
