"""Self-test of the private mail system of tests/integration/mta.py: each
listener speaks as documented (STARTTLS or not, TLS first, AUTH only
inside TLS), the certificates are the ones named, Dovecot's SASL takes the
right password and refuses a wrong one with 535, recipients get what the
module says, the recorder sees what a client sends in clear, and the real
Postfix sendmail delivers through the instance, as root and as an
unprivileged user confined as a systemd service is."""

import smtplib
import ssl
import subprocess
from email import message_from_bytes

import pytest

import mta


def context(pf):
    ctx = ssl.create_default_context(cafile=str(pf.ca_file))
    ctx.check_hostname = True
    return ctx


def smtp(pf, name, timeout=20):
    s = smtplib.SMTP("127.0.0.1", pf.ports[name], local_hostname="client.test",
                     timeout=timeout)
    s.ehlo()
    return s


def text(frm, to, subject):
    return (f"From: {frm}\r\nTo: {to}\r\nSubject: {subject}\r\n\r\n"
            f"{subject}\r\n").encode()


def s_client(pf, port, name, *extra):
    return subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", *extra,
         "-CAfile", str(pf.ca_file), "-verify_hostname", name,
         "-verify_return_error", "-servername", name, "-ign_eof"],
        input="QUIT\r\n", capture_output=True, text=True, timeout=30)


def test_s_client_sees_the_right_certificate(postfix):
    r = s_client(postfix, postfix.ports["starttls"], "mx.test",
                 "-starttls", "smtp")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Verify return code: 0 (ok)" in r.stdout
    assert "subject=CN = mx.test" in r.stdout
    r = s_client(postfix, postfix.ports["smtps"], "localhost")
    assert r.returncode == 0 and "Verify return code: 0 (ok)" in r.stdout
    assert "220 mx.test ESMTP" in r.stdout


def test_s_client_refuses_the_wrong_name(postfix):
    r = s_client(postfix, postfix.ports["wrongcert"], "mx.test",
                 "-starttls", "smtp")
    assert r.returncode != 0
    assert "hostname mismatch" in r.stdout + r.stderr
    # The same CA signed it: only the name is wrong.
    r = s_client(postfix, postfix.ports["wrongcert"], "wrong.invalid",
                 "-starttls", "smtp")
    assert r.returncode == 0 and "subject=CN = wrong.invalid" in r.stdout


def test_plain_listener_has_neither_starttls_nor_auth(postfix):
    s = smtp(postfix, "plain")
    assert not s.has_extn("starttls") and not s.has_extn("auth")
    assert s.docmd("STARTTLS")[0] == 502
    s.sendmail("a@example.org", ["plain-1@example.com"],
               text("a@example.org", "plain-1@example.com", "plain"))
    s.quit()
    got = postfix.wait_mail("plain-1@example.com")
    assert message_from_bytes(got[0])["Subject"] == "plain"


def test_recipients_get_what_the_module_says(postfix):
    s = smtp(postfix, "plain")
    s.mail("a@example.org")
    assert s.rcpt("defer-1@example.com")[:1] == (451,)
    assert b"4.3.2" in s.rcpt("defer-1@example.com")[1]
    code, msg = s.rcpt("reject-1@example.com")
    assert code == 550 and msg.startswith(b"5.7.1")
    code, msg = s.rcpt("nosuch-1@example.com")
    assert code == 550 and msg.startswith(b"5.1.1"), msg
    assert s.rcpt("Mixed-Case@Example.COM")[0] == 250
    s.quit()


def test_starttls_offers_auth_inside_tls_only(postfix):
    s = smtp(postfix, "starttls")
    assert s.has_extn("starttls") and not s.has_extn("auth")
    assert s.docmd("AUTH", "PLAIN AGFsaWNlAGFsaWNlLXNlY3JldA==")[0] == 503
    s.starttls(context=context(postfix))
    s.ehlo()
    assert "PLAIN" in s.esmtp_features["auth"]
    assert s.login("alice", postfix.users["alice"])[0] == 235
    s.quit()


def test_wrong_password_is_535(postfix):
    s = smtp(postfix, "submission")
    s.starttls(context=context(postfix))
    s.ehlo()
    with pytest.raises(smtplib.SMTPAuthenticationError) as e:
        s.login("alice", "not-her-password")
    assert e.value.smtp_code == 535
    assert b"5.7.8" in e.value.smtp_error
    with pytest.raises(smtplib.SMTPAuthenticationError):
        s.login("nobody-here", "whatever")
    s.close()
    assert "alice" in postfix.dovecot_log()


def test_submission_requires_auth(postfix):
    s = smtp(postfix, "submission")
    s.starttls(context=context(postfix))
    s.ehlo()
    s.mail("a@example.org")
    code, msg = s.rcpt("sub-1@example.com")
    assert code == 554 and msg.startswith(b"5.7.1"), msg
    s.rset()
    s.login("bob", postfix.users["bob"])
    s.sendmail("bob@example.org", ["sub-1@example.com"],
               text("bob@example.org", "sub-1@example.com", "authed"))
    s.quit()
    got = message_from_bytes(postfix.wait_mail("sub-1@example.com")[0])
    assert any("(Authenticated sender: bob)" in r for r in got.get_all("Received"))


def test_encrypt_refuses_mail_before_starttls(postfix):
    s = smtp(postfix, "encrypt")
    assert s.has_extn("starttls") and not s.has_extn("auth")
    code, msg = s.docmd("MAIL", "FROM:<a@example.org>")
    assert code == 530 and b"STARTTLS" in msg
    s.starttls(context=context(postfix))
    s.ehlo()
    assert s.login("alice", postfix.users["alice"])[0] == 235
    s.quit()


def test_smtps_speaks_tls_first(postfix):
    import socket
    with socket.create_connection(("127.0.0.1", postfix.ports["smtps"])) as c:
        c.settimeout(1.5)
        with pytest.raises((socket.timeout, TimeoutError)):
            c.recv(10)          # no clear-text banner
    s = smtplib.SMTP_SSL("localhost", postfix.ports["smtps"],
                         context=context(postfix), timeout=20)
    s.ehlo()
    assert s.has_extn("auth") and not s.has_extn("starttls")
    s.login("alice", postfix.users["alice"])
    s.sendmail("alice@example.org", ["smtps-1@example.com"],
               text("alice@example.org", "smtps-1@example.com", "smtps"))
    s.quit()
    got = message_from_bytes(postfix.wait_mail("smtps-1@example.com")[0])
    assert "(Authenticated sender: alice)" in " ".join(got.get_all("Received"))


def test_cleartext_auth_listener_offers_auth_without_tls(postfix):
    s = smtp(postfix, "cleartext_auth")
    assert s.has_extn("auth") and not s.has_extn("starttls")
    assert s.login("alice", postfix.users["alice"])[0] == 235
    s.quit()


def test_recorder_shows_what_went_in_clear(postfix):
    rec = mta.Recorder(postfix.ports["starttls"]).start()
    try:
        s = smtplib.SMTP("127.0.0.1", rec.port, local_hostname="client.test",
                         timeout=20)
        s.starttls(context=context(postfix))
        s.ehlo()
        s.login("alice", postfix.users["alice"])
        s.quit()
        clear = mta.Recorder(postfix.ports["cleartext_auth"]).start()
        s = smtplib.SMTP("127.0.0.1", clear.port, local_hostname="client.test",
                         timeout=20)
        s.login("alice", postfix.users["alice"])
        s.quit()
    finally:
        rec.stop()
    clear.stop()
    assert rec.sessions[0].clear_commands() == ["ehlo client.test", "STARTTLS"]
    assert b"alice" not in rec.sessions[0].client
    cmds = clear.sessions[0].clear_commands()
    assert cmds[0] == "ehlo client.test"
    assert any(c.startswith("AUTH PLAIN") for c in cmds), cmds


def test_sendmail_as_root(postfix):
    r = postfix.sendmail("-i", "-f", "a@example.org", "--", "sm-1@example.com",
                         data=text("a@example.org", "sm-1@example.com", "sm"))
    assert r.returncode == 0, r.stderr
    got = message_from_bytes(postfix.wait_mail("sm-1@example.com")[0])
    assert got["Return-Path"] == "<a@example.org>"


def confined_sendmail(pf, rcpt, **kw):
    argv, env = mta.confined(
        [mta.SENDMAIL, "-i", "-f", "a@example.org", "--", rcpt], postfix=pf,
        rw_paths=[pf.queue_dir / "maildrop"], **kw)
    return subprocess.run(argv, env=env, input=text("a@example.org", rcpt, rcpt),
                          capture_output=True, timeout=30)


def test_confined_sendmail_as_nobody(postfix):
    """Postfix's own sendmail run by nobody, with no capabilities and a
    read-only file system but for maildrop/: postdrop's set-gid does it."""
    r = confined_sendmail(postfix, "conf-1@example.com")
    assert r.returncode == 0, r.stderr
    got = postfix.wait_mail("conf-1@example.com")
    assert b"from userid 65534" in got[0]


def failing_sendmail(pf, **kw):
    """A confined sendmail expected to fail, cut off after 5 s: the
    confined run then ends postdrop, which would try again for ever."""
    argv, env = mta.confined(
        ["timeout", "5", mta.SENDMAIL, "-i", "-f", "a@example.org", "--",
         "conf-2@example.com"], postfix=pf, **kw)
    r = subprocess.run(argv, env=env, input=b"Subject: no\n\nno\n",
                       capture_output=True, timeout=30)
    assert r.returncode != 0
    return r.stderr.decode(errors="replace")


def test_confined_sendmail_without_setgid_fails(postfix):
    """The failure a test of the units must be able to see: with
    no_new_privs postdrop loses its group and cannot write maildrop/."""
    err = failing_sendmail(postfix, no_new_privs=True,
                           rw_paths=[postfix.queue_dir / "maildrop"])
    assert "mail_queue_enter: create file maildrop/" in err, err
    assert "Permission denied" in err, err
    assert postfix.mailbox("conf-2@example.com") == []


def test_confined_sendmail_with_readonly_maildrop_fails(postfix):
    """ProtectSystem=strict without maildrop/ among the writable paths."""
    err = failing_sendmail(postfix)
    assert "mail_queue_enter: create file maildrop/" in err, err
    assert "Read-only file system" in err, err
    assert postfix.mailbox("conf-2@example.com") == []


@pytest.mark.skipif(mta.unavailable() is not None, reason="needs root")
def test_confined_refuses_to_run_outside_a_namespace():
    """The guard of confined(): its remounts never touch the host. (Run
    here with nothing to remount, should the guard ever fail.)"""
    import os
    argv, env = mta.confined(["true"], user="root", read_only=False,
                             skip_without_namespace=False)
    env["MTA_HOST_NS"] = os.readlink("/proc/self/ns/mnt")
    r = subprocess.run(argv[argv.index("/bin/sh"):], env=env,
                       capture_output=True, text=True)
    assert r.returncode == 70 and "no private mount namespace" in r.stderr
