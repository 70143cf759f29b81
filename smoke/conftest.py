"""The production stack of the smoke test, started once for the session (see smoke/run.py for the whole story).

Needs PostgreSQL and Redis (SMOKE_DATABASE_ADMIN_URL / SMOKE_REDIS_URL, defaults on 127.0.0.1), Debian's chromium
and chromium-driver, and the dev requirements (moto's server, cryptography). Everything it starts it stops.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import boto3
import psycopg
import pytest
import redis
import requests
from botocore.config import Config
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from smoke import stack

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
    "--mute-audio",
    "--window-size=1280,900",
    "--ignore-certificate-errors",  # the smoke test's own CA; Caddy has real certificates in compose
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _make_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A certificate authority and a server certificate for 127.0.0.1 and localhost signed by it."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "avcrowd smoke test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = folder / "ca.pem", folder / "server.pem", folder / "server-key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


class Stack:
    """The running services, their logs, and helpers to talk to them."""

    def __init__(self, ports: stack.Ports, workdir: Path):
        self.ports = ports
        self.workdir = workdir
        self.logs = workdir / "logs"
        self.logs.mkdir()
        self.procs: dict[str, subprocess.Popen] = {}
        self.log_files: dict[str, Path] = {}
        self.hostname = socket.gethostname()
        self.admin = ("smokeadmin", secrets.token_urlsafe(12))
        self.annotator = ("smokeannotator", secrets.token_urlsafe(12))
        self.state: dict = {}  # what one step leaves for the next
        self.timings: dict[str, float] = {}

    # --- processes
    def env(self, service: str) -> dict[str, str]:
        return stack.service_environment(
            service,
            self.ports,
            path=f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin",
            home=str(self.workdir / "home"),
            hostname=self.hostname,
        )

    def run(self, service: str, cmd: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
        out = subprocess.run(cmd, cwd=ROOT, env=self.env(service), capture_output=True, text=True, timeout=timeout)
        if out.returncode != 0:
            raise AssertionError(
                f"{' '.join(cmd)} exited {out.returncode}:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
            )
        return out

    def start(self, service: str, name: str | None = None) -> subprocess.Popen:
        name = name or service
        log = self.logs / f"{name}.log"
        self.log_files[name] = log
        proc = subprocess.Popen(
            stack.COMMANDS[service],
            cwd=ROOT,
            env=self.env(service),
            stdout=open(log, "w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: killed as a whole
        )
        self.procs[name] = proc
        return proc

    def kill(self, name: str, sig=signal.SIGKILL):
        proc = self.procs[name]
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)

    def stop_all(self):
        for proc in self.procs.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        deadline = time.time() + 20
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)

    def healthcheck(self, service: str, timeout: float = 60) -> subprocess.CompletedProcess:
        cmd = [part.replace("$HOSTNAME", self.hostname) for part in stack.HEALTHCHECKS[service]]
        return subprocess.run(cmd, cwd=ROOT, env=self.env(service), capture_output=True, text=True, timeout=timeout)

    def wait_healthy(self, service: str, name: str | None = None, timeout: float = 180):
        name = name or service
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            proc = self.procs[name]
            if proc.poll() is not None:
                raise AssertionError(f"{name} exited {proc.returncode}:\n{self.log_tail(name)}")
            last = self.healthcheck(service)
            if last.returncode == 0:
                return last
            time.sleep(1)
        raise AssertionError(
            f"{name} not healthy in {timeout:.0f} s: {last.stdout}{last.stderr}\n{self.log_tail(name)}"
        )

    def wait_until(self, predicate, message: str, timeout: float = 60, interval: float = 0.3):
        deadline = time.time() + timeout
        while time.time() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(interval)
        raise AssertionError(message)

    def log_text(self, name: str) -> str:
        return self.log_files[name].read_text(errors="replace")

    def log_tail(self, name: str, n: int = 4000) -> str:
        return self.log_text(name)[-n:]

    def log_records(self, name: str) -> list[dict]:
        """The JSON log lines of a process (LOG_FORMAT=json); other lines (Celery's banner) are skipped."""
        out = []
        for line in self.log_text(name).splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out

    # --- clients
    def url(self, path: str) -> str:
        return self.ports.base_url + path

    def http(self) -> requests.Session:
        s = requests.Session()
        s.trust_env = False  # REQUESTS_CA_BUNDLE would win over the session's own CA
        s.verify = self.ports.ca
        return s

    def sql(self, query: str, *params):
        with psycopg.connect(self.ports.database_url.replace("postgres://", "postgresql://"), autocommit=True) as c:
            return c.execute(query, params).fetchall()

    def s3(self, public: bool = False):
        host = "localhost" if public else "127.0.0.1"
        return boto3.client(
            "s3",
            endpoint_url=f"https://{host}:{self.ports.s3}",
            region_name="us-east-1",
            aws_access_key_id="smoke-access-key",
            aws_secret_access_key="smoke-secret-key",
            config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"),
            verify=self.ports.ca,
        )

    def browser(self, name: str):
        options = webdriver.ChromeOptions()
        options.binary_location = shutil.which("chromium")
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={self.workdir / ('chromium-' + name)}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
        driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
        driver.set_page_load_timeout(60)
        return driver


def _database_urls() -> tuple[str, str]:
    """(admin URL, URL of the smoke test's own database) on the PostgreSQL server of SMOKE_DATABASE_ADMIN_URL,
    else of DATABASE_URL, else postgres@127.0.0.1:5432."""
    base = os.environ.get("SMOKE_DATABASE_ADMIN_URL") or os.environ.get("DATABASE_URL") or ""
    base = base or "postgres://postgres@127.0.0.1:5432/postgres"
    u = urlparse(base)
    name = (u.path.lstrip("/") or "avcrowd") + "_smoke"
    if os.environ.get("SMOKE_DATABASE"):
        name = os.environ["SMOKE_DATABASE"]
    admin = urlunparse(u._replace(scheme="postgresql", path="/postgres"))
    return admin, urlunparse(u._replace(scheme="postgres", path=f"/{name}"))


@pytest.fixture(scope="session")
def stk():
    for tool in ("chromium", "chromedriver"):
        if not shutil.which(tool):
            pytest.fail(f"{tool} is missing: apt-get install chromium chromium-driver (.ci/run does)")
    t0 = time.time()
    workdir = Path(tempfile.mkdtemp(prefix="avcrowd-smoke-"))
    (workdir / "home").mkdir()
    ca, cert, key = _make_certificates(workdir)
    admin_url, db_url = _database_urls()
    db_name = urlparse(db_url).path.lstrip("/")
    with psycopg.connect(admin_url, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        c.execute(f'CREATE DATABASE "{db_name}"')
    redis_url = os.environ.get("SMOKE_REDIS_URL", "redis://127.0.0.1:6379/14")
    redis.Redis.from_url(redis_url).flushdb()  # this run's own Redis database (SMOKE_REDIS_URL)
    ports = stack.Ports(
        web=_free_port(),
        s3=_free_port(),
        database_url=db_url,
        redis_url=redis_url,
        secret_key=secrets.token_urlsafe(50),
        metrics_token=secrets.token_urlsafe(24),
        workdir=str(workdir),
        cert=str(cert),
        key=str(key),
        ca=str(ca),
    )
    s = Stack(ports, workdir)
    try:
        moto_log = s.logs / "s3.log"
        s.log_files["s3"] = moto_log
        s.procs["s3"] = subprocess.Popen(
            [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(ports.s3), "-c", str(cert), "-k", str(key)],
            stdout=open(moto_log, "w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "MOTO_ALLOW_NONEXISTENT_REGION": "true"},
        )
        # the image build step and the init service, then the services, as compose starts them
        collectstatic = subprocess.Popen(  # the image build's step, beside the init service's
            ["python", "manage.py", "collectstatic", "--noinput", "-v0"], cwd=ROOT, env=s.env("init")
        )
        for _ in range(100):
            try:
                requests.get(f"https://127.0.0.1:{ports.s3}/", verify=ports.ca, timeout=2)
                break
            except requests.RequestException:
                time.sleep(0.2)
        s.state["init_output"] = s.run("init", stack.COMMANDS["init"]).stdout
        for (username, password), role in ((s.admin, "admin"), (s.annotator, "annotator")):
            s.run("init", ["python", "manage.py", "create_user", username, "--role", role, f"--password={password}"])
        assert collectstatic.wait(timeout=300) == 0, "collectstatic failed"
        s.timings["prepare (collectstatic, migrate, class list, bucket)"] = time.time() - t0
        for service in ("web", "worker", "beat"):
            s.start(service)
        s.wait_healthy("web")
        s.wait_until(lambda: "ready." in s.log_text("worker"), "the worker did not start", timeout=180)
        s.wait_healthy("worker")
        s.wait_healthy("beat")
        s.timings["services healthy"] = time.time() - t0 - sum(s.timings.values())
        yield s
    finally:
        s.stop_all()
        print("\nsmoke timings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in s.timings.items()))
        keep = os.environ.get("SMOKE_KEEP_LOGS")
        if keep:
            shutil.copytree(s.logs, keep, dirs_exist_ok=True)
        try:
            with psycopg.connect(admin_url, autocommit=True) as c:
                c.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        except psycopg.Error:
            pass
        shutil.rmtree(workdir, ignore_errors=True)
