"""The local Kafka broker: Apache Kafka jars from Maven, KRaft combined mode, one node.

Files in ``<home>/kafka``:
- ``lib/``: the jars, cached until ``pom.xml`` changes.
- ``data/``: the KRaft metadata and the topic logs.
- ``server.properties`` and ``log4j2.properties``: written on every start.
- ``kafka.log``: the broker's output, truncated on every start.
- ``maven.log`` and ``storage.log``: output of the one-off steps.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import subprocess
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from string import Template

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from streamfeat.devstack._process import port_accepts, require_executable
from streamfeat.devstack._service import LocalService, PortClaim
from streamfeat.devstack._settings import KAFKA_CONTROLLER_PORT_ENV, KAFKA_PORT_ENV, StackSettings
from streamfeat.errors import StackError

logger = logging.getLogger(__name__)

MIN_JAVA_VERSION = 17
"""Kafka 4 brokers need Java 17 or newer."""

_JAVA_INSTALL_HINT = "sudo apt-get install openjdk-17-jre-headless"
_MAVEN_INSTALL_HINT = "sudo apt-get install maven"
# The heap limit that Kafka's own kafka-server-start.sh sets by default.
_MAX_HEAP = "-Xmx1g"
_MAVEN_TIMEOUT_S = 900
_STORAGE_TOOL_TIMEOUT_S = 120
_STAMP_NAME = ".pom-sha256"
_CLUSTER_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{22}")
"""A Kafka cluster id: a UUID in URL-safe base64 without padding."""
_JAVA_VERSION_PATTERN = re.compile(r'version "(\d+)(?:\.(\d+))?')


class KafkaBroker(LocalService):
    """A single Kafka process acting as broker and KRaft controller on loopback ports."""

    name = "Kafka broker"

    def __init__(self, settings: StackSettings, report: Callable[[str], None]) -> None:
        super().__init__(settings.home / "kafka", "kafka")
        self._settings = settings
        self._report = report
        self.lib_dir = self.directory / "lib"
        self.data_dir = self.directory / "data"
        self.config_path = self.directory / "server.properties"
        self.log4j_path = self.directory / "log4j2.properties"

    @property
    def address(self) -> str:
        return self._settings.bootstrap_servers

    @property
    def ports(self) -> tuple[PortClaim, ...]:
        return (
            PortClaim(self._settings.kafka_port, "Kafka broker", KAFKA_PORT_ENV),
            PortClaim(
                self._settings.kafka_controller_port, "Kafka controller", KAFKA_CONTROLLER_PORT_ENV
            ),
        )

    def check_tools(self) -> None:
        java = require_executable("java", _JAVA_INSTALL_HINT)
        _check_java_version(java)
        if not self._jars_are_current():
            require_executable("mvn", _MAVEN_INSTALL_HINT)

    def probe(self, timeout_s: float) -> bool:
        # A TCP check first, because an admin client would spend the whole timeout retrying a
        # refused connection. Its log level 0 keeps librdkafka from printing those retries.
        if not port_accepts(self._settings.kafka_port, timeout_s):
            return False
        admin = AdminClient({"bootstrap.servers": self.address, "log_level": 0})
        try:
            metadata = admin.list_topics(timeout=timeout_s)
        except KafkaException:
            return False
        return bool(metadata.brokers)

    def _prepare(self) -> list[str]:
        java = require_executable("java", _JAVA_INSTALL_HINT)
        self.resolve_jars()
        self._write_config()
        if not (self.data_dir / "meta.properties").is_file():
            self._format_storage(java)
        return [
            java,
            _MAX_HEAP,
            "-XX:+ExitOnOutOfMemoryError",
            f"-Dlog4j2.configurationFile={self.log4j_path}",
            "-cp",
            self._classpath(),
            "kafka.Kafka",
            str(self.config_path),
        ]

    def _markers(self) -> tuple[str, ...]:
        return ("kafka.Kafka", str(self.config_path))

    def _classpath(self) -> str:
        return str(self.lib_dir / "*")

    def _jars_are_current(self) -> bool:
        stamp = self.lib_dir / _STAMP_NAME
        return stamp.is_file() and stamp.read_text(encoding="ascii") == _pom_digest()

    def resolve_jars(self) -> None:
        """Copy the broker's jars from Maven into ``lib/``, unless the cached ones match the pom.

        The jars land in a staging folder that replaces ``lib/`` only when Maven succeeded,
        so an interrupted download never leaves a half-filled ``lib/`` that looks current.
        """
        if self._jars_are_current():
            return
        mvn = require_executable("mvn", _MAVEN_INSTALL_HINT)
        self._report(f"Resolving the Kafka jars with Maven into {self.lib_dir} (first start only)")
        self.directory.mkdir(parents=True, exist_ok=True)
        pom_path = self.directory / "pom.xml"
        pom_path.write_bytes(_read_resource("pom.xml"))
        staging = self.directory / "lib.partial"
        shutil.rmtree(staging, ignore_errors=True)
        maven_log = self.directory / "maven.log"
        command = [
            mvn,
            "--batch-mode",
            "--quiet",
            "--file",
            str(pom_path),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={staging}",
        ]
        _run_logged(command, maven_log, _MAVEN_TIMEOUT_S, "Maven could not resolve the Kafka jars")
        (staging / _STAMP_NAME).write_text(_pom_digest(), encoding="ascii")
        shutil.rmtree(self.lib_dir, ignore_errors=True)
        staging.rename(self.lib_dir)
        logger.info("kafka_jars_resolved lib_dir=%s", self.lib_dir)

    def _write_config(self) -> None:
        template = Template(_read_resource("server.properties").decode("utf-8"))
        config = template.substitute(
            broker_port=self._settings.kafka_port,
            controller_port=self._settings.kafka_controller_port,
            data_dir=self.data_dir,
        )
        self.config_path.write_text(config, encoding="utf-8")
        self.log4j_path.write_bytes(_read_resource("log4j2.properties"))

    def _format_storage(self, java: str) -> None:
        """Format ``data/`` as a new single-node KRaft cluster with a fresh cluster id."""
        self._report(f"Formatting KRaft storage in {self.data_dir} (first start only)")
        storage_log = self.directory / "storage.log"
        base = [java, f"-Dlog4j2.configurationFile={self.log4j_path}", "-cp", self._classpath()]
        cluster_id = _run_logged(
            [*base, "kafka.tools.StorageTool", "random-uuid"],
            storage_log,
            _STORAGE_TOOL_TIMEOUT_S,
            "Kafka's StorageTool could not create a cluster id",
        ).strip()
        if _CLUSTER_ID_PATTERN.fullmatch(cluster_id) is None:
            raise StackError(
                f"Kafka's StorageTool printed {cluster_id!r} instead of a cluster id; "
                f"see {storage_log} and check that {self.log4j_path} logs to standard error."
            )
        format_arguments = ["format", "-t", cluster_id, "-c", str(self.config_path)]
        _run_logged(
            [*base, "kafka.tools.StorageTool", *format_arguments],
            storage_log,
            _STORAGE_TOOL_TIMEOUT_S,
            "Kafka's StorageTool could not format the KRaft storage",
        )
        logger.info("kafka_storage_formatted data_dir=%s cluster_id=%s", self.data_dir, cluster_id)


def _check_java_version(java: str) -> None:
    completed = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    match = _JAVA_VERSION_PATTERN.search(completed.stderr + completed.stdout)
    if match is None:
        raise StackError(
            f"`{java} -version` printed no version that could be read; check that it runs, "
            f"or install Java {MIN_JAVA_VERSION} or newer ({_JAVA_INSTALL_HINT})."
        )
    major = int(match.group(1))
    if major == 1 and match.group(2) is not None:
        major = int(match.group(2))  # Java 8 and older report "1.8".
    if major < MIN_JAVA_VERSION:
        raise StackError(
            f"`{java}` is Java {major} but Kafka needs Java {MIN_JAVA_VERSION} or newer; "
            f"install it ({_JAVA_INSTALL_HINT}) and put it first on PATH."
        )


def _run_logged(command: list[str], log_path: Path, timeout_s: float, failure: str) -> str:
    """Run ``command``, append its output to ``log_path`` and return its standard output."""
    program = Path(command[0]).name
    try:
        completed = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired as error:
        _append_output(log_path, command, error.stdout, error.stderr)
        raise StackError(
            f"{failure}: `{program}` did not finish within {timeout_s:g} s; "
            f"see {log_path} for its output."
        ) from error
    _append_output(log_path, command, completed.stdout, completed.stderr)
    if completed.returncode != 0:
        raise StackError(
            f"{failure}: `{program}` exited with code {completed.returncode}; "
            f"see {log_path} for its output."
        )
    return completed.stdout


def _append_output(
    log_path: Path, command: list[str], stdout: str | bytes | None, stderr: str | bytes | None
) -> None:
    with log_path.open("a", encoding="utf-8") as log:
        log.write(f"$ {' '.join(command)}\n")
        for output in (stdout, stderr):
            if isinstance(output, bytes):
                output = output.decode(errors="replace")
            log.write(output or "")


def _read_resource(name: str) -> bytes:
    return resources.files("streamfeat.devstack").joinpath(name).read_bytes()


def _pom_digest() -> str:
    return hashlib.sha256(_read_resource("pom.xml")).hexdigest()
