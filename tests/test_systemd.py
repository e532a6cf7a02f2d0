"""The shipped systemd unit: hardened enough, valid, and its W^X rule survivable."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

UNIT = ROOT / "config" / "systemd" / "mailbox-processor.service"
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")
MAX_EXPOSURE = 1.5


def unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def test_unit_has_the_service_contract() -> None:
    s = unit_settings()
    assert s["Type"] == ["notify"]
    assert s["Restart"] == ["on-failure"]
    assert int(s["WatchdogSec"][0]) > 0
    assert {v.split(":")[0] for v in s["LoadCredential"]} == {"imap-password", "smtp-password"}
    assert s["StateDirectory"] == ["mailbox-processor"]
    assert s.get("DynamicUser") == ["yes"] or "User" in s
    assert s["ExecStart"][0].endswith(" run")


@needs_analyze
def test_security_score_is_at_most_1_5() -> None:
    out = subprocess.run(
        [ANALYZE, "security", "--offline=yes", "--no-pager", str(UNIT)],
        capture_output=True, text=True, timeout=60,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", out.stdout)
    if match is None and "offline" in out.stderr:
        pytest.skip("this systemd-analyze has no --offline (needs systemd >= 250)")
    assert match, out.stdout + out.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE, out.stdout


@needs_analyze
def test_systemd_analyze_verify_is_clean(tmp_path: Path) -> None:
    # verify insists that ExecStart= exists: point it at this checkout's installed command.
    command = Path(sys.executable).parent / "mailbox-processor"
    if not command.exists():
        pytest.skip("the mailbox-processor command is not installed in this environment")
    text = re.sub(r"^ExecStart=\S+", f"ExecStart={command}", UNIT.read_text(encoding="utf-8"),
                  flags=re.MULTILINE)
    unit = tmp_path / UNIT.name
    unit.write_text(text, encoding="utf-8")
    out = subprocess.run([ANALYZE, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    complaints = [line for line in (out.stdout + out.stderr).splitlines() if UNIT.name in line]
    assert out.returncode == 0 and not complaints, out.stdout + out.stderr


# MemoryDenyWriteExecute= has broken cffi/libffi callbacks elsewhere. Linux ≥ 6.3 offers
# the same rule per process (PR_SET_MDWE): turn it on, then do what the daemon does.
MDWE_PROBE = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1
if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
    sys.exit(77)
import mmap
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
except OSError:
    pass
else:
    sys.exit(78)  # the rule is not in force: the probe would prove nothing
import io
from mailbox_processor import ack, cli, daemon, digest, images, mail, ops, pipeline, seal
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from PIL import Image
key = X25519PrivateKey.generate()
sealed = seal.seal(b"Subject: x\r\n\r\nbody", seal.identity_of(b"From: a@b.c\r\n\r\n"),
                   "HT-00000", key.public_key())
raw, _ident = seal.open_seal(sealed.blob, "HT-00000", key)
assert raw.endswith(b"body")
buf = io.BytesIO()
Image.new("RGB", (8, 8)).save(buf, "JPEG")
Image.open(io.BytesIO(buf.getvalue())).load()
print(ack.render_ack(ack.template_env(), "HT-00000", "Hòm thư số")[:10])
print("ok")
"""


def test_daemon_code_runs_with_memory_deny_write_execute() -> None:
    out = subprocess.run([sys.executable, "-c", MDWE_PROBE], capture_output=True, text=True,
                         timeout=120, cwd=ROOT)
    if out.returncode in (77, 78):
        pytest.skip("this kernel cannot enforce PR_SET_MDWE (Linux >= 6.3 needed)")
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr
