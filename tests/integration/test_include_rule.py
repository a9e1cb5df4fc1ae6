"""tests/include_rule.py, the include rule of docs/architecture.md: it
passes the tree, and finds each kind of breach in a tree made to hold one
(and nothing in the includes the rule allows)."""

import subprocess
import sys

import pytest

from conftest import ROOT

RULE = ROOT / "tests" / "include_rule.py"


def run(root):
    return subprocess.run([sys.executable, str(RULE), str(root)],
                          capture_output=True, text=True, timeout=30)


def tree(tmp_path, files):
    for name, text in files.items():
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return tmp_path


def test_the_tree_keeps_the_rule():
    r = run(ROOT)
    assert r.returncode == 0, r.stdout
    assert r.stdout == "include rule: no file includes another program's folder\n"


ALLOWED = {
    "common/log.c": '#include "log.h"\n#include <stdio.h>\n#include "../common/buf.h"\n',
    "mppd/server.c": '#include "session.h"\n#include "log.h"\n#include "../common/net.h"\n'
                     '#include "../mppd/store.h"\n#include <event2/event.h>\n',
    "mppqueue/runner.c": '#include "transport.h"\n#include "index.h"\n',
    "client/mppsend.c": '#include "mpp_client.h"\n#include "tls_client.h"\n',
    "tests/unit/test_x.c": '#include "../../mppd/session.h"\n#include "../../mppqueue/retry.h"\n',
    "tests/bench/b.c": '#include "../../client/mpp_client.h"\n#include "../../mppd/pwfile.h"\n',
    "Makefile": "ALL_CPPFLAGS = -D_GNU_SOURCE -Icommon -I$(BUILD)/gen\n",
}


def test_allowed_includes(tmp_path):
    r = run(tree(tmp_path, ALLOWED))
    assert r.returncode == 0, r.stdout


@pytest.mark.parametrize("name,text,where", [
    ("client/mppsend.c", 'x\n#include "../mppd/session.h"\n', "client/mppsend.c:2: includes ../mppd/session.h"),
    ("client/mpp_rc.h", '#  include "../mppqueue/json.h"\n', "client/mpp_rc.h:1: includes ../mppqueue/json.h"),
    ("mppd/server.c", '#include "../mppqueue/transport.h"\n', "mppd/server.c:1: includes ../mppqueue/transport.h"),
    ("mppd/store.c", '#include <mppqueue/retry.h>\n', "mppd/store.c:1: includes mppqueue/retry.h"),
    ("mppqueue/runner.c", '#include "../client/mpp_rc.h"\n', "mppqueue/runner.c:1: includes ../client/mpp_rc.h"),
    ("common/config.c", '#include "../mppd/auth.h"\n', "common/config.c:1: includes ../mppd/auth.h"),
    ("common/net.h", '#include "../mppqueue/smtp_reply.h"\n', "common/net.h:1: includes ../mppqueue/smtp_reply.h"),
    ("common/log.c", '#include "../client/mpp_client.h"\n', "common/log.c:1: includes ../client/mpp_client.h"),
    ("mppd/session.c", '#include "../tests/unit/helper.h"\n', "mppd/session.c:1: includes ../tests/unit/helper.h"),
    ("Makefile", "CPPFLAGS += -Imppd -Icommon\n", "Makefile:1: -Imppd"),
], ids=["client-mppd", "client-mppqueue", "mppd-mppqueue", "mppd-angle", "mppqueue-client",
        "common-mppd", "common-mppqueue", "common-client", "program-tests", "makefile-I"])
def test_each_breach_is_found(tmp_path, name, text, where):
    files = dict(ALLOWED)
    files[name] = text + files.get(name, "")
    r = run(tree(tmp_path, files))
    assert r.returncode == 1, r.stdout
    lines = r.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith(where), r.stdout
