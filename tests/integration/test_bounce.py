"""Bounces and delay warnings as RFC 3464 reports, end to end: mppqueue
delivers to the private Postfix of mta.py (or a failing sendmail), the
report goes back to the sender like any message, and Python's email
package reads it as multipart/report with the right delivery-status
fields per recipient."""

import email
import email.policy
import subprocess
import time

import pytest

from conftest import BIN, Mppqueue, message

# Fails every message (exit 67, EX_NOUSER) but those with the null
# sender, which it keeps beside itself: the bounces.
FAILING_SENDMAIL = """#!/bin/sh
if [ "$3" = "" ]; then cat >"$(dirname "$0")/bounce.$$"; exit 0; fi
cat >/dev/null
exit 67
"""


def poster(mppd_factory, user, **settings):
    """An mppd whose user `user` (sender USER@example.org) posts."""
    m = mppd_factory(user, **settings)
    m.add_user(user, "secret")
    return m.start()


def post(m, user, to, cc="", subject="report me"):
    c = m.client()
    assert c.login(user, "secret") == 250
    extra = f"Cc: {cc}\r\n" if cc else ""
    assert c.post(message(to=to, subject=subject, extra=extra)) == 250
    c.close()


def report_of(raw):
    """The report parsed: (message, human part, per-message fields,
    per-recipient groups, header part)."""
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    human, status, headers = msg.get_payload()
    assert human.get_content_type() == "text/plain"
    assert status.get_content_type() == "message/delivery-status"
    assert headers.get_content_type() == "text/rfc822-headers"
    groups = status.get_payload()
    return msg, human, groups[0], groups[1:], headers


def by_recipient(groups):
    out = {}
    for g in groups:
        kind, _, addr = g["Final-Recipient"].partition(";")
        assert kind.strip().lower() == "rfc822"
        out[addr.strip()] = g
    return out


def run_until(q, pred, runs=4):
    for _ in range(runs):
        q.once()
        if pred():
            return
    assert pred()


def test_bounce_of_a_5xx_from_postfix(postfix, mppd_factory):
    m = poster(mppd_factory, "b1", transport=f"smtp:127.0.0.1:{postfix.ports['plain']}")
    post(m, "b1", "nosuch-b1@example.com", cc="ok-b1@example.com")
    q = Mppqueue(m)
    run_until(q, lambda: postfix.mailbox("b1@example.org"))
    assert len(postfix.mailbox("ok-b1@example.com")) == 1
    raw = postfix.wait_mail("b1@example.org")[0]
    msg, human, per_msg, groups, headers = report_of(raw)
    assert msg["Return-Path"] == "<>", "sent with the null sender"
    assert msg["From"] == "Mail Delivery System <MAILER-DAEMON@mpp.test>"
    assert msg["Subject"] == "Undelivered Mail Returned to Sender"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert per_msg["Reporting-MTA"] == "dns; mpp.test"
    assert per_msg["Arrival-Date"]
    orig = [r for r in m.stored() if not r["is_bounce"]][0]
    assert per_msg["X-Mpp-Queue-ID"] == orig["id"]
    rcpts = by_recipient(groups)
    assert list(rcpts) == ["nosuch-b1@example.com"]
    g = rcpts["nosuch-b1@example.com"]
    assert g["Action"] == "failed"
    assert g["Status"] == "5.1.1"
    assert g["Diagnostic-Code"].startswith("smtp; 550 5.1.1 <nosuch-b1@example.com>")
    assert "User unknown" in g["Diagnostic-Code"]
    assert g["Last-Attempt-Date"]
    assert "nosuch-b1@example.com" in human.get_payload()
    head = headers.get_payload()
    assert "Subject: report me" in head and "Hello." not in head
    assert f"id {orig['id']}" in head        # the original Received:
    # The bounce is never bounced and gets no warning: one row, sent.
    bounces = [r for r in m.stored() if r["is_bounce"]]
    assert len(bounces) == 1 and bounces[0]["sender"] == ""


def test_bounce_of_a_failing_sendmail(mppd_factory, tmp_path):
    script = tmp_path / "sendmail"
    script.write_text(FAILING_SENDMAIL)
    script.chmod(0o755)
    m = poster(mppd_factory, "b2", transport=f"sendmail:{script}")
    post(m, "b2", "carol@example.net", cc="dave@example.net")
    q = Mppqueue(m)
    run_until(q, lambda: list(tmp_path.glob("bounce.*")))
    got = list(tmp_path.glob("bounce.*"))
    assert len(got) == 1
    msg, human, per_msg, groups, headers = report_of(got[0].read_bytes())
    rcpts = by_recipient(groups)
    assert sorted(rcpts) == ["carol@example.net", "dave@example.net"]
    for g in rcpts.values():
        assert g["Action"] == "failed"
        assert g["Status"] == "5.0.0"
        assert g["Diagnostic-Code"] == "X-Unix; sendmail exit 67"


def test_expiry_bounce_keeps_the_last_deferral_code(postfix, mppd_factory):
    m = poster(mppd_factory, "b3", transport=f"smtp:127.0.0.1:{postfix.ports['plain']}",
               retry_min=1, retry_max=1, max_queue_lifetime=2)
    post(m, "b3", "defer-b3@example.com")
    q = Mppqueue(m)
    q.once()
    time.sleep(2.2)
    run_until(q, lambda: postfix.mailbox("b3@example.org"))
    _, human, _, groups, _ = report_of(postfix.wait_mail("b3@example.org")[0])
    g = by_recipient(groups)["defer-b3@example.com"]
    assert g["Action"] == "failed"
    assert g["Status"] == "4.3.2", "RFC 3463: the actual problem's code"
    assert g["Diagnostic-Code"].startswith("smtp; 451 4.3.2 <defer-b3@example.com>")
    assert "Deferred by the test's Postfix" in g["Diagnostic-Code"]
    assert "too old" in human.get_payload()


def mppq_show(m, qid):
    r = subprocess.run([str(BIN / "mppq"), "-c", str(m.config_path), "show",
                        "--envelope", qid], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout


WARN_AFTER = 5


def test_one_delay_warning(postfix, mppd_factory):
    # The first run must end before the warning is due: 5 s leaves a busy
    # machine room for it (1 s did not).
    m = poster(mppd_factory, "b4", transport=f"smtp:127.0.0.1:{postfix.ports['plain']}",
               retry_min=1, retry_max=1, delay_warning_time=WARN_AFTER)
    posted = time.monotonic()
    post(m, "b4", "defer-b4@example.com", cc="ok-b4@example.com")
    q = Mppqueue(m)
    q.once()        # before WARN_AFTER: no warning yet
    assert time.monotonic() - posted < WARN_AFTER, "the machine is too slow"
    orig = [r for r in m.stored() if not r["is_bounce"]][0]
    assert orig["warned_at"] is None
    assert "delay_warned_at" not in mppq_show(m, orig["id"])
    time.sleep(max(0, posted + WARN_AFTER + 0.2 - time.monotonic()))
    run_until(q, lambda: postfix.mailbox("b4@example.org"))
    for _ in range(3):      # more deferrals: no second warning
        time.sleep(1.1)
        q.once()
    assert len(postfix.mailbox("b4@example.org")) == 1
    assert len(postfix.mailbox("ok-b4@example.com")) == 1
    rows = m.stored()
    orig = [r for r in rows if not r["is_bounce"]][0]
    assert orig["state"] == "deferred" and orig["attempts"] >= 4
    assert orig["warned_at"] is not None
    assert "delay_warned_at: 20" in mppq_show(m, orig["id"])
    assert len([r for r in rows if r["is_bounce"]]) == 1
    msg, human, per_msg, groups, _ = report_of(postfix.mailbox("b4@example.org")[0])
    assert msg["Return-Path"] == "<>"
    assert msg["Subject"] == "Delayed Mail (still being retried)"
    assert "warning only" in human.get_payload()
    rcpts = by_recipient(groups)
    assert list(rcpts) == ["defer-b4@example.com"], "only those still deferred"
    g = rcpts["defer-b4@example.com"]
    assert g["Action"] == "delayed"
    assert g["Status"] == "4.3.2"
    assert g["Diagnostic-Code"].startswith("smtp; 451 4.3.2 <defer-b4@example.com>")
    assert g["Will-Retry-Until"]


def test_no_warning_about_a_bounce(postfix, mppd_factory):
    """The bounce to a sender whose own mailbox defers stays deferred,
    and no warning is ever made about it."""
    m = poster(mppd_factory, "defer-b5", transport=f"smtp:127.0.0.1:{postfix.ports['plain']}",
               retry_min=1, retry_max=1, delay_warning_time=1)
    post(m, "defer-b5", "nosuch-b5@example.com")
    q = Mppqueue(m)
    q.once()
    for _ in range(3):
        time.sleep(1.1)
        q.once()
    rows = m.stored()
    bounces = [r for r in rows if r["is_bounce"]]
    assert len(bounces) == 1
    assert bounces[0]["state"] == "deferred" and bounces[0]["attempts"] >= 2
    assert bounces[0]["warned_at"] is None
    assert "id=%s delay_warning=" % bounces[0]["id"] not in q.log()


def test_warnings_off_by_default(postfix, mppd_factory):
    m = poster(mppd_factory, "b6", transport=f"smtp:127.0.0.1:{postfix.ports['plain']}",
               retry_min=1, retry_max=1)
    post(m, "b6", "defer-b6@example.com")
    q = Mppqueue(m)
    q.once()
    time.sleep(1.1)
    q.once()
    assert [r["is_bounce"] for r in m.stored()] == [0]
    assert "delay_warning=" not in q.log()
