"""A WS-Management endpoint on 127.0.0.1 (HTTPS, Basic auth) that speaks the WinRS messages the
winrm target sends through pypsrp: Create shell, Command, Receive, Signal, Delete.

Every request is checked against the shapes of the WS-Management/WinRS schemas (MS-WSMV) that
pypsrp produces: the SOAP 1.2 envelope, the WS-Addressing headers (To, ReplyTo anonymous,
Action, MessageID), wsman ResourceURI (the cmd shell), MaxEnvelopeSize, OperationTimeout as an
xs:duration, the ShellId selector of an existing shell, and each body's elements. A deviation is
recorded in ``errors`` and answered with a fault. Commands are answered by the stand-in
PowerShell (``fake_windows``) from recorded answers.
"""

from __future__ import annotations

import base64
import datetime
import re
import ssl
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.targets import fake_windows
from tests.targets.fake_windows import Answer

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "wsa": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "wsman": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "wsmv": "http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd",
    "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
    "wst": "http://schemas.xmlsoap.org/ws/2004/09/transfer",
}
CMD_SHELL = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd"
ANONYMOUS = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"
ACTIONS = {
    "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create": "Create",
    "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Command": "Command",
    "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Receive": "Receive",
    "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Signal": "Signal",
    "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete": "Delete",
}
SIGNALS = {"http://schemas.microsoft.com/wbem/wsman/1/windows/shell/signal/terminate",
           "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/signal/ctrl_c"}
_DURATION = re.compile(r"\APT\d+(\.\d+)?S\Z")
STATE = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/"


@dataclass
class Running:
    done: threading.Event = field(default_factory=threading.Event)
    stdout: bytes = b""
    rc: int = 0
    sent: bool = False
    signalled: str = ""


class WsmanEndpoint:
    def __init__(self, directory: Path, answers: dict[str, Answer], user: str = "drcheck",
                 password: str = "s3cret") -> None:
        self.answers = answers
        self.authorization = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.errors: list[str] = []
        self.operations: list[str] = []
        self.shells: set[str] = set()
        self.commands: dict[str, Running] = {}
        self.cert = directory / "wsman.pem"
        key = directory / "wsman.key"
        _self_signed(self.cert, key)
        handler = type("Handler", (_Handler,), {"endpoint": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- messages --------------------------------------------------------------------------

    def handle(self, body: bytes) -> tuple[int, str]:
        try:
            envelope = ET.fromstring(body)
            operation, message_id, header = self._header(envelope)
            self.operations.append(operation)
            answer = getattr(self, f"_{operation.lower()}")(envelope, header)
        except ShapeError as exc:
            self.errors.append(str(exc))
            return 500, _fault(str(exc))
        return 200, _envelope(operation, message_id, answer)

    def _header(self, envelope: ET.Element) -> tuple[str, str, ET.Element]:
        _require(envelope.tag == f"{{{NS['s']}}}Envelope", "root is not a SOAP 1.2 Envelope")
        header = envelope.find("s:Header", NS)
        _require(header is not None and envelope.find("s:Body", NS) is not None,
                 "Envelope needs Header and Body")
        assert header is not None
        action = _text(header, "wsa:Action")
        _require(action in ACTIONS, f"unknown wsa:Action {action}")
        _require(_text(header, "wsa:ReplyTo/wsa:Address") == ANONYMOUS, "ReplyTo not anonymous")
        _require(bool(_text(header, "wsa:To")), "no wsa:To")
        message_id = _text(header, "wsa:MessageID")
        _require(message_id.startswith("uuid:"), "wsa:MessageID is not a uuid: URI")
        _require(_text(header, "wsman:ResourceURI") == CMD_SHELL, "ResourceURI is not cmd")
        _require(_text(header, "wsman:MaxEnvelopeSize").isdigit(), "MaxEnvelopeSize")
        _require(bool(_DURATION.match(_text(header, "wsman:OperationTimeout"))),
                 "OperationTimeout is not an xs:duration PTnS")
        return ACTIONS[action], message_id, header

    def _shell_id(self, header: ET.Element) -> str:
        selector = header.find("wsman:SelectorSet/wsman:Selector[@Name='ShellId']", NS)
        _require(selector is not None and selector.text in self.shells,
                 "no ShellId selector of an open shell")
        assert selector is not None and selector.text is not None
        return selector.text

    def _create(self, envelope: ET.Element, header: ET.Element) -> str:
        shell = envelope.find("s:Body/rsp:Shell", NS)
        _require(shell is not None, "Create without rsp:Shell")
        assert shell is not None
        _require(_text(shell, "rsp:InputStreams") == "stdin", "InputStreams")
        _require(_text(shell, "rsp:OutputStreams") == "stdout stderr", "OutputStreams")
        shell_id = str(uuid.uuid4()).upper()
        self.shells.add(shell_id)
        return (f'<x:ResourceCreated><a:Address>https://127.0.0.1:{self.port}/wsman</a:Address>'
                f'<a:ReferenceParameters><w:ResourceURI>{CMD_SHELL}</w:ResourceURI>'
                f'<w:SelectorSet><w:Selector Name="ShellId">{shell_id}</w:Selector>'
                f'</w:SelectorSet></a:ReferenceParameters></x:ResourceCreated>'
                f'<rsp:Shell><rsp:ShellId>{shell_id}</rsp:ShellId>'
                f'<rsp:ResourceUri>{CMD_SHELL}</rsp:ResourceUri>'
                f'<rsp:InputStreams>stdin</rsp:InputStreams>'
                f'<rsp:OutputStreams>stdout stderr</rsp:OutputStreams></rsp:Shell>')

    def _command(self, envelope: ET.Element, header: ET.Element) -> str:
        self._shell_id(header)
        line = _text(envelope, "s:Body/rsp:CommandLine/rsp:Command")
        _require(bool(line), "Command without rsp:CommandLine/rsp:Command")
        command_id = str(uuid.uuid4()).upper()
        running = self.commands[command_id] = Running()

        def work() -> None:
            try:
                running.rc, out = fake_windows.run_command_line(line, self.answers.get)
                running.stdout = out.encode()
            except ValueError as exc:
                running.stdout, running.rc = str(exc).encode(), 9009
            running.done.set()

        threading.Thread(target=work, daemon=True).start()
        return (f"<rsp:CommandResponse><rsp:CommandId>{command_id}</rsp:CommandId>"
                "</rsp:CommandResponse>")

    def _receive(self, envelope: ET.Element, header: ET.Element) -> str:
        self._shell_id(header)
        desired = envelope.find("s:Body/rsp:Receive/rsp:DesiredStream", NS)
        _require(desired is not None and desired.text == "stdout stderr",
                 "Receive without DesiredStream stdout stderr")
        assert desired is not None
        command_id = desired.get("CommandId", "")
        _require(command_id in self.commands, "Receive for an unknown CommandId")
        running = self.commands[command_id]
        seconds = float(_text(header, "wsman:OperationTimeout")[2:-1])
        if not running.done.wait(min(seconds, 1.0)):
            return (f'<rsp:ReceiveResponse><rsp:CommandState CommandId="{command_id}" '
                    f'State="{STATE}Running"/></rsp:ReceiveResponse>')
        data = base64.b64encode(running.stdout).decode() if not running.sent else ""
        running.sent = True
        return (f'<rsp:ReceiveResponse>'
                f'<rsp:Stream Name="stdout" CommandId="{command_id}">{data}</rsp:Stream>'
                f'<rsp:Stream Name="stdout" CommandId="{command_id}" End="true"/>'
                f'<rsp:Stream Name="stderr" CommandId="{command_id}" End="true"/>'
                f'<rsp:CommandState CommandId="{command_id}" State="{STATE}Done">'
                f'<rsp:ExitCode>{running.rc}</rsp:ExitCode></rsp:CommandState>'
                f'</rsp:ReceiveResponse>')

    def _signal(self, envelope: ET.Element, header: ET.Element) -> str:
        self._shell_id(header)
        signal = envelope.find("s:Body/rsp:Signal", NS)
        _require(signal is not None and signal.get("CommandId", "") in self.commands,
                 "Signal without the CommandId of a command")
        assert signal is not None
        code = _text(signal, "rsp:Code")
        _require(code in SIGNALS, f"unknown signal {code}")
        self.commands[signal.get("CommandId", "")].signalled = code
        return "<rsp:SignalResponse/>"

    def _delete(self, envelope: ET.Element, header: ET.Element) -> str:
        self.shells.discard(self._shell_id(header))
        return ""


class ShapeError(Exception):
    pass


def _require(condition: bool, what: str) -> None:
    if not condition:
        raise ShapeError(what)


def _text(element: ET.Element, path: str) -> str:
    found = element.find(path, NS)
    return (found.text or "").strip() if found is not None else ""


def _envelope(operation: str, message_id: str, body: str) -> str:
    action = {"Create": "http://schemas.xmlsoap.org/ws/2004/09/transfer/CreateResponse",
              "Delete": "http://schemas.xmlsoap.org/ws/2004/09/transfer/DeleteResponse"}.get(
        operation, f"{NS['rsp']}/{operation}Response")
    return (f'<s:Envelope xmlns:s="{NS["s"]}" xmlns:a="{NS["wsa"]}" xmlns:x="{NS["wst"]}" '
            f'xmlns:w="{NS["wsman"]}" xmlns:rsp="{NS["rsp"]}"><s:Header>'
            f'<a:Action>{action}</a:Action><a:MessageID>uuid:{uuid.uuid4()}</a:MessageID>'
            f'<a:To>{ANONYMOUS}</a:To><a:RelatesTo>{message_id}</a:RelatesTo></s:Header>'
            f'<s:Body>{body}</s:Body></s:Envelope>')


def _fault(reason: str) -> str:
    return (f'<s:Envelope xmlns:s="{NS["s"]}"><s:Body><s:Fault><s:Code><s:Value>s:Sender'
            f'</s:Value></s:Code><s:Reason><s:Text xml:lang="en-US">{reason}</s:Text>'
            f'</s:Reason></s:Fault></s:Body></s:Envelope>')


class _Handler(BaseHTTPRequestHandler):
    endpoint: WsmanEndpoint

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.headers.get("Authorization") != self.endpoint.authorization:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="WSMAN"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if not self.headers.get("Content-Type", "").startswith("application/soap+xml"):
            self.endpoint.errors.append(f"Content-Type {self.headers.get('Content-Type')}")
        status, text = self.endpoint.handle(body)
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/soap+xml;charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _self_signed(cert_path: Path, key_path: Path) -> None:
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "drcheck-test-winrm")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))


def wait_until(condition: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return bool(condition())
