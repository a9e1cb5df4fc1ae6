"""A private mail system for tests that need a real MTA: Postfix from
Debian, started from a configuration directory of its own, with STARTTLS
and implicit TLS from a test CA, SASL through a private Dovecot auth
service, and a maildir that the test reads. Nothing of the
system's own Postfix or Dovecot is used or changed; only loopback ports
from free_port().

The module needs neither pytest nor conftest (tests/bench can import it);
conftest.py's `postfix` fixture wraps it for the integration tests.

    pf = Postfix(base=None, hostname="mx.test", users=None)
                                # files in base, or a new directory under
                                # /tmp (removed by cleanup); users default
                                # to alice and bob (see pf.users)
    pf.start()                  # Postfix, then Dovecot; returns pf once
                                # every listener answers
    ...
    pf.stop()                   # both stopped (start() may follow)
    pf.cleanup()                # stopped, its own directory removed

What it offers (every path absolute):

    pf.ports[NAME]      loopback port of each smtpd listener (127.0.0.1):
        plain           no STARTTLS, no AUTH; a loopback client may send
        starttls        STARTTLS offered (smtpd_tls_security_level = may),
                        AUTH offered inside TLS only, not required
        submission      STARTTLS offered, AUTH inside TLS only and required
                        (RCPT without it: 554 5.7.1)
        encrypt         STARTTLS required (smtpd_tls_security_level =
                        encrypt: MAIL before it is 530 5.7.0), AUTH required
        smtps           TLS from the first byte (smtpd_tls_wrappermode),
                        AUTH required
        wrongcert       as starttls, but the certificate names only
                        wrong.invalid (signed by the same CA)
        cleartext_auth  no STARTTLS, AUTH offered in clear and required:
                        for tests that a client never sends it there
    pf.hostname         the server's name (default mx.test), in its banner
    pf.ca_file          the test CA's certificate (PEM): trust this
    pf.cert_file        the served certificate: DNS:<hostname>,
                        DNS:localhost, IP:127.0.0.1, IP:::1
    pf.wrong_cert_file  the wrongcert listener's: DNS:wrong.invalid only
    pf.users            {user: password} known to Dovecot (SHA512-CRYPT)
    pf.conf_dir         Postfix's config_directory (main.cf, master.cf)
    pf.queue_dir        its queue_directory
    pf.mail_dir         where mail is delivered (virtual(8), uid nobody)
    pf.dir              the base directory; maillog, dovecot/ and tls/ too

What a recipient gets, whatever its domain (every domain is local):

    defer*@...          451 4.3.2 at RCPT ("451 4.3.2 <ADDR>: Recipient
                        address rejected: Deferred by the test's Postfix")
    reject*@...         550 5.7.1 at RCPT ("... Refused by the test's
                        Postfix")
    nosuch*@...         550 5.1.1 User unknown in virtual mailbox table
    anything else       delivered to the maildir mail_dir/all/, one copy
                        per recipient with its Delivered-To: field

    pf.mailbox(addr)                the messages delivered to addr (bytes,
                                    oldest first; Delivered-To and
                                    Return-Path added by Postfix)
    pf.wait_mail(addr, n=1, timeout=30)   the same, once there are n
    pf.log(since=0)                 Postfix's log (maillog_file), from
                                    offset since; pf.log_mark() is the
                                    current end, pf.dovecot_log() Dovecot's
    pf.queued()                     messages still in Postfix's queue
    pf.set(**params)                postconf -e each, then postfix reload
    pf.cmd("postqueue", "-f")       a Postfix command with -c conf_dir
    pf.sendmail(*args, data=b"")    the real /usr/sbin/sendmail against
                                    this instance, as root (MAIL_CONFIG=
                                    conf_dir); its CompletedProcess
    pf.sendmail_env()               the environment that does that

MAIL_CONFIG serves root only: postdrop, set-gid, accepts another
configuration directory from a non-root caller only when the default
/etc/postfix/main.cf lists it in alternate_config_directories, which a
test must not touch. confined() below runs a command where conf_dir *is*
/etc/postfix instead (a private mount namespace), as any user.

    rec = Recorder(pf.ports["starttls"]).start()
        a loopback relay in front of a port that records the bytes of each
        connection: rec.port to connect to; rec.sessions, one Session per
        connection with .client and .server bytes; session.clear_commands()
        the command lines the client sent before TLS began (none for
        implicit TLS); rec.stop().

    confined(cmd, postfix=pf, user="nobody", caps=(), no_new_privs=False,
             read_only=True, rw_paths=[...])
        (argv, env) running cmd the way a hardened systemd service runs
        it: under `user` (None: root, as a unit without User=), with only
        caps in the capability bounding set (CapabilityBoundingSet=),
        optionally no_new_privs (NoNewPrivileges=yes), conf_dir of
        postfix (if given) as /etc/postfix, every mount read-only except
        rw_paths and /proc, /sys, /dev (ProtectSystem=strict with
        ReadWritePaths=), and every process it leaves killed when it ends
        (a unit's cgroup). Root only.

unavailable() says why this machine cannot run it (None when it can).
"""

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

POSTFIX_UID_MAIL = 65534          # virtual(8) delivers as nobody
SENDMAIL = "/usr/sbin/sendmail"

LISTENERS = ("plain", "starttls", "submission", "encrypt", "smtps",
             "wrongcert", "cleartext_auth")


class MtaError(Exception):
    """The private mail system could not be set up or did not answer."""


def free_port(host="127.0.0.1"):
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for(pred, timeout, what, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise MtaError(f"timed out after {timeout}s waiting for {what}")


def unavailable():
    """Why a private Postfix cannot run here, or None."""
    if os.geteuid() != 0:
        return "a private Postfix and Dovecot need root"
    for prog in ("postfix", "postconf", "dovecot", "openssl", SENDMAIL):
        if shutil.which(prog) is None:
            return f"{prog} is not installed (Debian postfix, dovecot-core, openssl)"
    for user in ("postfix", "dovecot", "dovenull"):
        try:
            import pwd
            pwd.getpwnam(user)
        except KeyError:
            return f"no {user} user"
    out = subprocess.run(["dovecot", "--version"], capture_output=True,
                         text=True).stdout
    if not out.startswith("2.3."):
        return f"Dovecot config written for 2.3, found {out.strip()}"
    return None


def greets(port, banner=b"220", tls=False):
    """True when the listener on port answers with banner."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            if tls:
                return True     # a TLS listener says nothing first
            s.settimeout(1)
            return s.recv(64).startswith(banner)
    except OSError:
        return False


def run(args, **kw):
    r = subprocess.run(args, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise MtaError(f"{' '.join(map(str, args))}: exit {r.returncode}: "
                       f"{(r.stderr or r.stdout).strip()}")
    return r


# ------------------------------------------------------------- test CA

CA_CNF = """[req]
distinguished_name = dn
[dn]
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
"""

LEAF_EXT = """basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = {san}
"""


class TestCA:
    """A CA made by the openssl command, and server certificates it signs
    (EC P-256, valid two days)."""

    def __init__(self, d, cn="mpp MTA test CA"):
        self.dir = Path(d)
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "ca.cnf").write_text(CA_CNF)
        self.serial = 0x5000
        self.openssl("req", "-x509", "-new", "-newkey", "ec", "-pkeyopt",
                     "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key",
                     "-out", "ca.pem", "-days", "2", "-subj", f"/CN={cn}",
                     "-config", "ca.cnf", "-extensions", "ca")
        (self.dir / "ca.key").chmod(0o600)
        self.cert = self.dir / "ca.pem"

    def openssl(self, *args):
        run(["openssl", *args], cwd=self.dir)

    def issue(self, name, cn, sans):
        """(certificate, key) for cn with subjectAltName entries sans
        (["DNS:x", "IP:127.0.0.1"])."""
        self.serial += 1
        (self.dir / f"{name}.ext").write_text(LEAF_EXT.format(san=",".join(sans)))
        self.openssl("req", "-new", "-newkey", "ec", "-pkeyopt",
                     "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                     f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}",
                     "-config", "ca.cnf")
        self.openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem",
                     "-CAkey", "ca.key", "-set_serial", str(self.serial),
                     "-days", "2", "-extfile", f"{name}.ext", "-out",
                     f"{name}.pem")
        (self.dir / f"{name}.key").chmod(0o600)
        return self.dir / f"{name}.pem", self.dir / f"{name}.key"


# ------------------------------------------------- Dovecot, SASL only

# Dovecot as Postfix's SASL server and nothing else: no protocol, one
# passdb of SHA512-CRYPT hashes, and the auth socket in Postfix's private/
# directory (smtpd_sasl_path = private/auth, relative to the queue). The
# first passdb only marks checks from loopback "nodelay": a test's wrong
# password must not slow the next test's right one (Dovecot's auth
# penalty grows per client address).
DOVECOT_CONF = """\
base_dir = {dir}/run
state_dir = {dir}/state
instance_name = mpp-mta-{tag}
protocols = none
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_verbose = yes
log_path = {dir}/dovecot.log
default_login_user = dovenull
default_internal_user = dovecot
passdb {{
  driver = passwd-file
  args = username_format=%{{rip}} {dir}/loopback
}}
passdb {{
  driver = passwd-file
  args = scheme=SHA512-CRYPT {dir}/users
}}
userdb {{
  driver = static
  args = uid=65534 gid=65534 home=/nonexistent allow_all_users=yes
}}
service auth {{
  unix_listener {socket} {{
    mode = 0660
    user = postfix
    group = postfix
  }}
}}
"""
DOVECOT_LOOPBACK = "127.0.0.1:::::::noauthenticate nodelay=yes\n"


class DovecotAuth:
    """A private Dovecot whose only service is SASL for Postfix."""

    def __init__(self, d, socket_path, users):
        self.dir = Path(d)
        self.socket = Path(socket_path)
        self.users = users
        self.proc = None

    def start(self):
        self.dir.mkdir(parents=True, exist_ok=True)
        lines = []
        for user, password in self.users.items():
            h = run(["openssl", "passwd", "-6", "-stdin"],
                    input=password + "\n").stdout.strip()
            lines.append(f"{user}:{{SHA512-CRYPT}}{h}\n")
        users = self.dir / "users"
        users.write_text("".join(lines))
        users.chmod(0o640)          # read by the auth process, as dovecot
        shutil.chown(users, group="dovecot")
        (self.dir / "loopback").write_text(DOVECOT_LOOPBACK)
        conf = self.dir / "dovecot.conf"
        conf.write_text(DOVECOT_CONF.format(dir=self.dir, socket=self.socket,
                                            tag=self.dir.parent.name))
        self.logf = open(self.dir / "dovecot.out", "ab")
        self.proc = subprocess.Popen(["dovecot", "-F", "-c", str(conf)],
                                     stdout=self.logf, stderr=subprocess.STDOUT)

        def ready():
            if self.proc.poll() is not None:
                raise MtaError("dovecot exited: " + self.log())
            return self.socket.is_socket()
        wait_for(ready, 20, "Dovecot's auth socket")

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        self.logf.close()

    def log(self):
        text = ""
        for name in ("dovecot.out", "dovecot.log"):
            p = self.dir / name
            if p.exists():
                text += p.read_text(errors="replace")
        return text


# ------------------------------------------------------------- Postfix

MAIN_CF = """\
# A private Postfix for mpp's tests (tests/integration/mta.py).
compatibility_level = 3.6
queue_directory = {dir}/queue
data_directory = {dir}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = {hostname}
mydomain = test
myorigin = $myhostname
mydestination =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
local_recipient_maps =
biff = no
smtpd_banner = $myhostname ESMTP mpp test Postfix
maillog_file = {dir}/maillog
maillog_file_prefixes = {dir}

# Every domain is local: mail goes into a maildir per recipient under
# mail/ (virtual(8), as nobody), unknown ones (nosuch*) are 550 5.1.1.
virtual_mailbox_domains = static:all
virtual_mailbox_base = {dir}/mail
virtual_mailbox_maps = regexp:{conf}/mailboxes
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
virtual_minimum_uid = 1

# Per listener (master.cf) one of these two: who may name recipients.
mpp_open_rcpt = check_recipient_access regexp:{conf}/recipient_access,
    permit_mynetworks, reject
mpp_auth_rcpt = check_recipient_access regexp:{conf}/recipient_access,
    permit_sasl_authenticated, reject
smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated,
    reject_unauth_destination
smtpd_recipient_restrictions = $mpp_open_rcpt

# TLS from the test CA; off unless a listener turns it on. AUTH only
# inside TLS unless a listener says otherwise.
smtpd_tls_cert_file = {tls}/good.pem
smtpd_tls_key_file = {tls}/good.key
smtpd_tls_security_level = none
smtpd_tls_auth_only = yes
smtpd_tls_loglevel = 1
smtpd_tls_received_header = yes
smtpd_tls_session_cache_database =
smtp_tls_session_cache_database =

# SASL through the private Dovecot (private/auth in the queue directory).
smtpd_sasl_type = dovecot
smtpd_sasl_path = private/auth
smtpd_sasl_auth_enable = no
smtpd_sasl_authenticated_header = yes
"""

# One maildir for everyone (virtual(8) allows no $1 in a result): each
# recipient's copy has its own Delivered-To. nosuch* has no mailbox.
MAILBOXES = """\
if !/^nosuch/
/@/	all/
endif
"""

RECIPIENT_ACCESS = """\
/^defer[^@]*@/	451 4.3.2 Deferred by the test's Postfix
/^reject[^@]*@/	550 5.7.1 Refused by the test's Postfix
"""

# name: the -o options of its smtpd (master.cf)
LISTENER_OPTS = {
    "plain": ["smtpd_tls_security_level=none", "smtpd_sasl_auth_enable=no"],
    "starttls": ["smtpd_tls_security_level=may", "smtpd_sasl_auth_enable=yes"],
    "submission": ["smtpd_tls_security_level=may", "smtpd_sasl_auth_enable=yes",
                   "smtpd_recipient_restrictions=$mpp_auth_rcpt"],
    "encrypt": ["smtpd_tls_security_level=encrypt", "smtpd_sasl_auth_enable=yes",
                "smtpd_recipient_restrictions=$mpp_auth_rcpt"],
    "smtps": ["smtpd_tls_wrappermode=yes", "smtpd_tls_security_level=encrypt",
              "smtpd_sasl_auth_enable=yes",
              "smtpd_recipient_restrictions=$mpp_auth_rcpt"],
    "wrongcert": ["smtpd_tls_security_level=may", "smtpd_sasl_auth_enable=yes",
                  "smtpd_tls_cert_file={tls}/wrong.pem",
                  "smtpd_tls_key_file={tls}/wrong.key"],
    "cleartext_auth": ["smtpd_tls_security_level=none",
                       "smtpd_sasl_auth_enable=yes", "smtpd_tls_auth_only=no",
                       "smtpd_recipient_restrictions=$mpp_auth_rcpt"],
}

# Debian's services, none chrooted: the queue directory is private and
# holds no copy of /etc, and smtpd must reach Dovecot's socket.
# name, type, private, unpriv, wakeup, maxproc, command
SERVICES = [
    ("pickup", "unix", "n", "-", "60", "1", "pickup"),
    ("cleanup", "unix", "n", "-", "-", "0", "cleanup"),
    ("qmgr", "unix", "n", "-", "300", "1", "qmgr"),
    ("tlsmgr", "unix", "-", "-", "1000?", "1", "tlsmgr"),
    ("rewrite", "unix", "-", "-", "-", "-", "trivial-rewrite"),
    ("bounce", "unix", "-", "-", "-", "0", "bounce"),
    ("defer", "unix", "-", "-", "-", "0", "bounce"),
    ("trace", "unix", "-", "-", "-", "0", "bounce"),
    ("verify", "unix", "-", "-", "-", "1", "verify"),
    ("flush", "unix", "n", "-", "1000?", "0", "flush"),
    ("proxymap", "unix", "-", "-", "-", "-", "proxymap"),
    ("proxywrite", "unix", "-", "-", "-", "1", "proxymap"),
    ("smtp", "unix", "-", "-", "-", "-", "smtp"),
    ("relay", "unix", "-", "-", "-", "-", "smtp"),
    ("showq", "unix", "n", "-", "-", "-", "showq"),
    ("error", "unix", "-", "-", "-", "-", "error"),
    ("retry", "unix", "-", "-", "-", "-", "error"),
    ("discard", "unix", "-", "-", "-", "-", "discard"),
    ("local", "unix", "-", "n", "-", "-", "local"),
    ("virtual", "unix", "-", "n", "-", "-", "virtual"),
    ("lmtp", "unix", "-", "-", "-", "-", "lmtp"),
    ("anvil", "unix", "-", "-", "-", "1", "anvil"),
    ("scache", "unix", "-", "-", "-", "1", "scache"),
    ("postlog", "unix-dgram", "n", "-", "-", "1", "postlogd"),
]


def delivered_to(data):
    """The Delivered-To: address of a delivered message, lower case."""
    head = data.split(b"\n\n", 1)[0]
    for line in head.split(b"\n"):
        if line.lower().startswith(b"delivered-to:"):
            return line.split(b":", 1)[1].strip().decode().lower()
    return None


class Postfix:
    """The private instance; see the module's text for what it offers."""

    def __init__(self, base=None, hostname="mx.test", users=None):
        # Outside pytest's tmp_path by default: Postfix's and Dovecot's
        # unprivileged processes (and a confined sendmail) must reach it,
        # and Dovecot's socket path must stay short (108 bytes).
        self.own_base = base is None
        self.dir = Path(base) if base else Path(tempfile.mkdtemp(prefix="mpp-mta-", dir="/tmp"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o755)
        self.hostname = hostname
        self.users = dict(users or {"alice": "alice-secret", "bob": "bob-secret"})
        self.conf_dir = self.dir / "conf"
        self.queue_dir = self.dir / "queue"
        self.mail_dir = self.dir / "mail"
        self.tls_dir = self.dir / "tls"
        self.maillog = self.dir / "maillog"
        self.ports = {name: free_port() for name in LISTENERS}
        self.running = False
        self.dovecot = DovecotAuth(self.dir / "dovecot",
                                   self.queue_dir / "private" / "auth",
                                   self.users)
        self.make_pki()
        self.write_config()

    def make_pki(self):
        ca = TestCA(self.tls_dir)
        self.ca_file = ca.cert
        self.cert_file, self.key_file = ca.issue(
            "good", self.hostname,
            [f"DNS:{self.hostname}", "DNS:localhost", "IP:127.0.0.1", "IP:::1"])
        self.wrong_cert_file, self.wrong_key_file = ca.issue(
            "wrong", "wrong.invalid", ["DNS:wrong.invalid"])

    def master_cf(self):
        lines = ["# service type  private unpriv  chroot  wakeup  maxproc command"]
        for name in LISTENERS:
            lines.append(f"127.0.0.1:{self.ports[name]} inet n - n - - smtpd")
            lines.append(f"  -o syslog_name=postfix/{name}")
            lines += [f"  -o {o.format(tls=self.tls_dir)}" for o in LISTENER_OPTS[name]]
        for name, typ, priv, unpriv, wakeup, maxproc, cmd in SERVICES:
            lines.append(f"{name} {typ} {priv} {unpriv} n {wakeup} {maxproc} {cmd}")
        return "\n".join(lines) + "\n"

    def write_config(self):
        self.conf_dir.mkdir(exist_ok=True)
        (self.conf_dir / "main.cf").write_text(MAIN_CF.format(
            dir=self.dir, conf=self.conf_dir, tls=self.tls_dir,
            hostname=self.hostname, uid=POSTFIX_UID_MAIL, gid=POSTFIX_UID_MAIL))
        (self.conf_dir / "master.cf").write_text(self.master_cf())
        (self.conf_dir / "mailboxes").write_text(MAILBOXES)
        (self.conf_dir / "recipient_access").write_text(RECIPIENT_ACCESS)
        self.queue_dir.mkdir(exist_ok=True)      # root's; postfix makes the rest
        for d in (self.dir / "data", self.mail_dir):
            d.mkdir(exist_ok=True)
        shutil.chown(self.dir / "data", "postfix")
        os.chown(self.mail_dir, POSTFIX_UID_MAIL, POSTFIX_UID_MAIL)

    def cmd(self, *args, check=True):
        """A Postfix command (postfix, postconf, postqueue...) with -c."""
        r = subprocess.run([args[0], "-c", str(self.conf_dir), *args[1:]],
                           capture_output=True, text=True)
        if check and r.returncode != 0:
            raise MtaError(f"{' '.join(args)}: exit {r.returncode}: "
                           f"{(r.stderr or r.stdout).strip()}")
        return r

    def start(self):
        self.cmd("postfix", "start")
        self.running = True
        try:
            # Dovecot's socket goes into private/, which postfix start
            # makes; it must be there before the first connection, or a
            # SASL listener's smtpd exits and master throttles it.
            self.dovecot.start()
            for name, port in self.ports.items():
                wait_for(lambda: greets(port, tls=(name == "smtps")), 20,
                         f"Postfix's {name} listener")
        except Exception:
            self.stop()
            raise
        return self

    def stop(self):
        self.dovecot.stop()
        if self.running:
            self.cmd("postfix", "stop", check=False)
            self.running = False
            pidfile = self.queue_dir / "pid" / "master.pid"
            wait_for(lambda: not self._master_alive(pidfile), 30,
                     "Postfix's master to exit")

    @staticmethod
    def _master_alive(pidfile):
        try:
            pid = int(pidfile.read_text().split()[0])
            os.kill(pid, 0)
            return True
        except (OSError, ValueError, IndexError):
            return False

    def cleanup(self):
        self.stop()
        if self.own_base:
            shutil.rmtree(self.dir, ignore_errors=True)

    def set(self, **params):
        """postconf -e name=value for each, then postfix reload."""
        self.cmd("postconf", "-e", *[f"{k}={v}" for k, v in params.items()])
        if self.running:
            self.cmd("postfix", "reload")

    # -- what arrived

    def mailbox(self, addr=None):
        """Messages delivered to addr (every one when None), oldest first,
        as bytes."""
        d = self.mail_dir / "all"
        files = [p for sub in ("new", "cur") if (d / sub).is_dir()
                 for p in (d / sub).iterdir()]
        files.sort(key=lambda p: (p.stat().st_mtime_ns, p.name))
        out = []
        for p in files:
            data = p.read_bytes()
            if addr is None or delivered_to(data) == addr.lower():
                out.append(data)
        return out

    def wait_mail(self, addr, n=1, timeout=30):
        """The messages delivered to addr once there are at least n."""
        return wait_for(lambda: len(self.mailbox(addr)) >= n and self.mailbox(addr),
                        timeout, f"{n} message(s) for {addr}; log:\n"
                        + self.log()[-2000:])

    def queued(self):
        """Messages Postfix still holds (every queue but hold)."""
        n = 0
        for q in ("maildrop", "incoming", "active", "deferred"):
            for _, _, files in os.walk(self.queue_dir / q):
                n += len(files)
        return n

    def log_mark(self):
        return self.maillog.stat().st_size if self.maillog.exists() else 0

    def log(self, since=0):
        if not self.maillog.exists():
            return ""
        with open(self.maillog, "rb") as f:
            f.seek(since)
            return f.read().decode(errors="replace")

    def dovecot_log(self):
        return self.dovecot.log()

    # -- the sendmail command

    def sendmail_env(self):
        return {**os.environ, "MAIL_CONFIG": str(self.conf_dir)}

    def sendmail(self, *args, data=b"", timeout=60):
        """/usr/sbin/sendmail ARGS against this instance, as root."""
        return subprocess.run([SENDMAIL, *args], input=data,
                              capture_output=True, env=self.sendmail_env(),
                              timeout=timeout)


# ------------------------------------------------------------ recorder

class Session:
    """The bytes of one relayed connection, each way."""

    def __init__(self):
        self.client = bytearray()
        self.server = bytearray()

    def clear_commands(self):
        """Command lines the client sent before TLS: up to and with its
        STARTTLS, or none when its first byte starts a TLS handshake."""
        data = bytes(self.client)
        if data[:1] == b"\x16":
            return []
        out = []
        for line in data.split(b"\r\n"):
            if line[:1] == b"\x16":
                break
            out.append(line.decode("latin-1"))
            if line.upper() == b"STARTTLS":
                break
        if out and out[-1] == "":
            out.pop()
        return out


class Recorder:
    """A loopback relay in front of target_port that records each
    connection's bytes as they pass (clear text, or TLS records)."""

    def __init__(self, target_port):
        self.target = target_port
        self.sessions = []
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.stopping = False

    def start(self):
        self.sock.listen(16)
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            try:
                s = socket.create_connection(("127.0.0.1", self.target), timeout=10)
            except OSError:
                c.close()
                continue
            sess = Session()
            self.sessions.append(sess)
            for src, dst, buf in ((c, s, sess.client), (s, c, sess.server)):
                threading.Thread(target=self._pump, args=(src, dst, buf),
                                 daemon=True).start()

    @staticmethod
    def _pump(src, dst, buf):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                buf += data
                dst.sendall(data)
        except OSError:
            pass
        for s in (dst, src):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def stop(self):
        self.stopping = True
        self.sock.close()


# ----------------------------------------------------------- confined

# Run by `unshare --mount --pid --fork`: the shell is the new PID
# namespace's first process, so every process the command leaves behind
# dies with it (as a unit's cgroup is killed when its main process ends).
# The check on the mount namespace guards the host: the remounts below
# must never happen outside a namespace of our own.
CONFINE_SH = r"""
set -e
[ "$(readlink /proc/self/ns/mnt)" != "$MTA_HOST_NS" ] ||
	{ echo "confined: no private mount namespace" >&2; exit 70; }
[ -z "$MTA_POSTFIX_CONF" ] || mount --bind "$MTA_POSTFIX_CONF" /etc/postfix
for p in $MTA_RW; do mount --bind "$p" "$p"; done
if [ -n "$MTA_READ_ONLY" ]; then
	awk '{ print $5 }' /proc/self/mountinfo | sort -u | while read -r mp; do
		case "$mp" in /proc|/proc/*|/sys|/sys/*|/dev|/dev/*) continue ;; esac
		keep=
		for p in $MTA_RW; do [ "$mp" != "$p" ] || keep=1; done
		[ -n "$keep" ] || mount -o remount,bind,ro "$mp" 2>/dev/null || true
	done
fi
set +e
setpriv $MTA_SETPRIV -- "$@"
exit $?
"""


_mount_ns_error = []


def mount_namespace_unavailable():
    """Why no private mount namespace can be made here, or None: in a
    chroot whose / is no mount point, unshare cannot make it private."""
    if not _mount_ns_error:
        r = subprocess.run(["unshare", "--mount", "--propagation", "private",
                            "true"], capture_output=True, text=True)
        _mount_ns_error.append(None if r.returncode == 0 else
                               r.stderr.strip() or f"exit {r.returncode}")
    return _mount_ns_error[0]


def confined(cmd, *, postfix=None, user="nobody", caps=(), no_new_privs=False,
             read_only=True, rw_paths=(), skip_without_namespace=True):
    """(argv, env) that run cmd as a hardened systemd service would: see
    the module's text. user None stays root (a unit without User=); caps
    are the capabilities left in the bounding set ("setuid");
    rw_paths are absolute paths without spaces. The calling test is
    skipped, with the reason, where no private mount namespace can be
    made (unless skip_without_namespace is False)."""
    why = mount_namespace_unavailable() if skip_without_namespace else None
    if why is not None:
        import pytest
        pytest.skip(f"no private mount namespace here: {why}")
    setpriv = ["--bounding-set=" + ",".join(["-all"] + [f"+{c}" for c in caps]),
               "--inh-caps=-all"]
    if user is not None:
        import pwd
        pw = pwd.getpwnam(user)
        setpriv += [f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}",
                    "--clear-groups"]
    if no_new_privs:
        setpriv.append("--no-new-privs")
    for p in rw_paths:
        if " " in str(p) or not os.path.isabs(str(p)):
            raise MtaError(f"confined: bad writable path {p}")
    env = {**os.environ,
           "MTA_HOST_NS": os.readlink("/proc/self/ns/mnt"),
           "MTA_POSTFIX_CONF": str(postfix.conf_dir) if postfix else "",
           "MTA_RW": " ".join(str(p) for p in rw_paths),
           "MTA_READ_ONLY": "1" if read_only else "",
           "MTA_SETPRIV": " ".join(setpriv)}
    env.pop("MAIL_CONFIG", None)
    if user is None and "sys_ptrace" not in caps:
        # A root process that drops to its user becomes non-dumpable, and
        # without CAP_SYS_PTRACE LeakSanitizer cannot stop its threads at
        # exit (the sanitizer build would fail every such run).
        env["ASAN_OPTIONS"] = ":".join(
            x for x in (os.environ.get("ASAN_OPTIONS"), "detect_leaks=0") if x)
    argv = ["unshare", "--mount", "--propagation", "private", "--pid",
            "--fork", "/bin/sh", "-c", CONFINE_SH, "confined", *map(str, cmd)]
    return argv, env
