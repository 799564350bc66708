"""A throwaway Postfix and Dovecot for the mail loop tests (Debian's `postfix` and
`dovecot-imapd`; `.ci/run` installs them).

Each runs from a configuration written here, with its queue, state, logs and mail in one
folder, on a free loopback port: nothing of the system's own mail setup is used or changed, and
a system Postfix or Dovecot may run beside them. Postfix accepts mail for LOOP_DOMAIN and for
the bounce address's domain and delivers it to Maildirs; mail to an unknown user of those
domains is accepted and then bounced by Postfix itself, with its own DSN to the envelope
sender, as a real mail server does. Dovecot serves those Maildirs over IMAP. Both deliver and
read as MAIL_UID (nobody), so the folder lives under /tmp (0755), not in pytest's tmp_path,
which the postfix and nobody users cannot enter.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

POSTFIX = Path("/usr/sbin/postfix")
DOVECOT = Path("/usr/sbin/dovecot")
LOOP_DOMAIN = "loop.example.org"
MAIL_UID = 65534  # nobody: owns every Maildir; Postfix delivers and Dovecot reads as this user
PASSWORD = "bounce-mailbox-password"


def missing() -> str:
    """Why the loop tests cannot run here, or "" when they can."""
    absent = [f"{path} (Debian package {package})" for path, package in
              ((POSTFIX, "postfix"), (DOVECOT, "dovecot-imapd")) if not path.exists()]
    return f"the mail loop needs {' and '.join(absent)}" if absent else ""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout:g} s")
        time.sleep(0.05)


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def command(root: Path, program: Path, *args: str) -> None:
    """Run a server's start or stop command. Its output goes to a file, not a pipe: the
    daemon it leaves behind keeps what it inherited open."""
    with (root / "commands.log").open("ab") as log:
        result = subprocess.run([str(program), *args], stdout=log, stderr=log, timeout=60)
    if result.returncode:
        raise RuntimeError(f"{program.name} {' '.join(args)} failed:\n"
                           + (root / "commands.log").read_text(errors="replace"))


@contextmanager
def mail_root() -> Iterator[Path]:
    """A folder under /tmp that the postfix and nobody users can enter, removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="mailer-loop-"))
    root.chmod(0o755)
    (root / "mail").mkdir()
    shutil.chown(root / "mail", MAIL_UID, MAIL_UID)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


class Postfix:
    """Postfix on 127.0.0.1:port, delivering `mailboxes` (address → Maildir under root/mail)."""

    def __init__(self, root: Path, mailboxes: dict[str, str], domains: tuple[str, ...]):
        self.root, self.mailboxes, self.domains = root / "postfix", mailboxes, domains
        self.mail = root / "mail"
        self.port = free_port()

    def maildir(self, address: str) -> Path:
        return self.mail / self.mailboxes[address]

    def log(self) -> str:
        path = self.root / "postfix.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self) -> None:
        etc = self.root / "etc"
        for folder in (etc, self.root / "queue", self.root / "data"):
            folder.mkdir(parents=True)
        shutil.chown(self.root / "data", "postfix")
        (etc / "main.cf").write_text(self._main_cf())
        (etc / "master.cf").write_text(self._master_cf())
        (etc / "vmailbox").write_text("".join(f"{a} {path}/\n" for a, path in self.mailboxes.items()))
        command(self.root, POSTFIX, "-c", str(etc), "start")
        wait_until(lambda: listening(self.port), 30, f"Postfix listening on {self.port}\n{self.log()}")

    def stop(self) -> None:
        command(self.root, POSTFIX, "-c", str(self.root / "etc"), "stop")
        wait_until(lambda: not listening(self.port), 30, "Postfix stopping")

    def _main_cf(self) -> str:
        return f"""\
compatibility_level = 3.6
myhostname = mx.{LOOP_DOMAIN}
mydomain = {LOOP_DOMAIN}
myorigin = {LOOP_DOMAIN}
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
queue_directory = {self.root}/queue
data_directory = {self.root}/data
maillog_file = {self.root}/postfix.log
maillog_file_prefixes = {self.root}
syslog_name = postfix-mailer-loop
# No DNS, and nothing leaves this machine: only the virtual domains below are delivered.
smtp_dns_support_level = disabled
smtp_host_lookup = native
default_transport = error:no mail leaves this test
relay_transport = error:no mail leaves this test
local_transport = error:no local delivery in this test
alias_maps =
alias_database =
recipient_delimiter = +
virtual_mailbox_domains = {" ".join(self.domains)}
virtual_mailbox_base = {self.mail}
virtual_mailbox_maps = texthash:{self.root}/etc/vmailbox
virtual_uid_maps = static:{MAIL_UID}
virtual_gid_maps = static:{MAIL_UID}
# Accept mail for unknown users and bounce it afterwards: Postfix writes its own DSN.
smtpd_reject_unlisted_recipient = no
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
# Refuse any line that ends in a bare LF, from every client (SMTP smuggling rules).
smtpd_forbid_bare_newline = reject
smtpd_forbid_bare_newline_exclusions =
biff = no
delay_warning_time = 0
"""

    def _master_cf(self) -> str:
        """master.cf: no chroot; `virtual` (the Maildir delivery) runs privileged."""
        services = {"pickup": "n - 60 1", "cleanup": "n - - 0", "qmgr": "n - 300 1",
                    "rewrite": "- - - - trivial-rewrite", "bounce": "- - - 0",
                    "defer": "- - - 0 bounce", "trace": "- - - 0 bounce", "verify": "- - - 1",
                    "flush": "n - 1000? 0", "proxymap": "- - - -", "proxywrite": "- - - 1 proxymap",
                    "smtp": "- - - -", "relay": "- - - - smtp", "showq": "n - - -",
                    "error": "- - - -", "retry": "- - - - error", "discard": "- - - -",
                    "virtual": "- n - -", "anvil": "- - - 1", "scache": "- - - 1"}
        lines = [f"127.0.0.1:{self.port} inet n - n - - smtpd"]
        for name, columns in services.items():
            private, unprivileged, wakeup, limit, *command = columns.split()
            lines.append(f"{name} unix {private} {unprivileged} n {wakeup} {limit} "
                         f"{command[0] if command else name}")
        return "\n".join([*lines, "postlog unix-dgram n - n - 1 postlogd", ""])


class Dovecot:
    """Dovecot's IMAP on 127.0.0.1:port for `users` (address → Maildir under root/mail), with
    the password PASSWORD. With `tls`, it also offers STARTTLS there and IMAPS on tls_port,
    with a certificate of its own for 127.0.0.1 (`certificate`); `settings` adds lines to
    its configuration."""

    def __init__(self, root: Path, users: dict[str, str], tls: bool = False, settings: str = ""):
        self.root, self.users, self.settings = root / "dovecot", users, settings
        self.mail = root / "mail"
        self.port = free_port()
        self.tls_port = free_port() if tls else 0
        self.certificate = self.root / "cert.pem"

    def url(self, address: str, folder: str = "INBOX", scheme: str = "imap") -> str:
        port = self.tls_port if scheme == "imaps" else self.port
        return f"{scheme}://{address.replace('@', '%40')}@127.0.0.1:{port}/{folder}"

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self) -> None:
        self.root.mkdir(parents=True)
        (self.root / "users").write_text("".join(
            f"{a}:{{PLAIN}}{PASSWORD}:{MAIL_UID}:{MAIL_UID}::{self.mail / path}::\n"
            for a, path in self.users.items()))
        if self.tls_port:
            write_certificate(self.certificate, self.root / "key.pem")
        (self.root / "dovecot.conf").write_text(self._config())
        command(self.root, DOVECOT, "-c", str(self.root / "dovecot.conf"))
        wait_until(lambda: listening(self.port), 30, f"Dovecot listening on {self.port}\n{self.log()}")

    def stop(self) -> None:
        command(self.root, DOVECOT, "-c", str(self.root / "dovecot.conf"), "stop")
        wait_until(lambda: not listening(self.port), 30, "Dovecot stopping")

    def _config(self) -> str:
        return f"""\
protocols = imap
listen = 127.0.0.1
base_dir = {self.root}/run
state_dir = {self.root}/state
log_path = {self.root}/dovecot.log
instance_name = mailer-loop-{self.port}
{f"ssl = yes{chr(10)}ssl_cert = <{self.certificate}{chr(10)}ssl_key = <{self.root}/key.pem"
   if self.tls_port else "ssl = no"}
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
first_valid_uid = {MAIL_UID}
mail_location = maildir:~
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.root}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {self.root}/users
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.tls_port}
  }}
}}
{self.settings}
"""


def write_certificate(cert: Path, key: Path) -> None:
    """A self-signed certificate for 127.0.0.1 and localhost, and its key."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(private.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(private, hashes.SHA256()))
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(private.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))


@contextmanager
def running(*servers: Postfix | Dovecot) -> Iterator[None]:
    """Start the servers, and stop them afterwards whatever happened."""
    started: list[Postfix | Dovecot] = []
    try:
        for server in servers:
            server.start()
            started.append(server)
        yield
    finally:
        for server in reversed(started):
            server.stop()
