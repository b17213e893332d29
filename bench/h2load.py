"""Data path (benchmark): h2load's report and one h2load run of one HTTP/2 path.

h2load (Debian ``nghttp2-client``) prints totals and min/max/mean of the request time, but no
percentiles; with ``--log-file`` it writes one line per request (start µs, status, µs until the
end of the response), from which p50 and p99 are taken here as wrk reports them. Writing that
line costs h2load one ``write`` per request, on the load core, never on the proxy's.

h2load offers only ``h2`` in ALPN (``--npn-list=h2``), so a server that cannot speak HTTP/2 is
not silently measured over HTTP/1.1: ``checked`` turns such a run into an ``H2loadError`` that
says what the server did instead.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.load import LoadError, LoadReport, RunResult, measure_command, nearest_rank, pinned

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}
_FINISHED = re.compile(r"^finished in ([\d.]+)(us|ms|s), ([\d.]+) req/s", re.M)
_REQUESTS = re.compile(
    r"^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
    r"(\d+) errored, (\d+) timeout",
    re.M,
)
_STATUS = re.compile(r"^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", re.M)
_REQUEST_TIME = re.compile(
    r"^time for request:\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)\s+"
    r"([\d.]+)(us|ms|s)",
    re.M,
)
_PROTOCOL = re.compile(r"^Application protocol: (\S+)", re.M)
_NOT_NEGOTIATED = "No supported protocol was negotiated"


class H2loadError(LoadError):
    """h2load failed, printed something this parser does not understand, or did not speak the
    protocol that was asked for."""


@dataclass(frozen=True, slots=True)
class H2loadReport:
    protocol: str
    """The negotiated application protocol ("h2", "h2c", "http/1.1"), "" when none was."""
    seconds: float
    rps: float
    total: int
    started: int
    done: int
    succeeded: int
    failed: int
    errored: int
    timeout: int
    status_2xx: int
    status_3xx: int
    status_4xx: int
    status_5xx: int
    min_ms: float
    max_ms: float
    mean_ms: float
    alpn_refused: bool
    """h2load said that no protocol it offers was negotiated."""


def _ms(value: str, unit: str) -> float:
    return float(value) * _UNITS_MS[unit]


def parse_h2load(output: str) -> H2loadReport:
    finished = _FINISHED.search(output)
    requests = _REQUESTS.search(output)
    status = _STATUS.search(output)
    request_time = _REQUEST_TIME.search(output)
    if not (finished and requests and status and request_time):
        raise H2loadError(f"cannot parse h2load output:\n{output}")
    protocol = _PROTOCOL.search(output)
    total, started, done, succeeded, failed, errored, timeout = map(int, requests.groups())
    s2, s3, s4, s5 = map(int, status.groups())
    t = request_time.groups()
    return H2loadReport(
        protocol=protocol.group(1) if protocol else "",
        seconds=_ms(finished.group(1), finished.group(2)) / 1000.0,
        rps=float(finished.group(3)),
        total=total,
        started=started,
        done=done,
        succeeded=succeeded,
        failed=failed,
        errored=errored,
        timeout=timeout,
        status_2xx=s2,
        status_3xx=s3,
        status_4xx=s4,
        status_5xx=s5,
        min_ms=_ms(t[0], t[1]),
        max_ms=_ms(t[2], t[3]),
        mean_ms=_ms(t[4], t[5]),
        alpn_refused=_NOT_NEGOTIATED in output,
    )


def checked(report: H2loadReport, protocol: str = "h2") -> H2loadReport:
    """``report`` if h2load spoke ``protocol`` and completed requests; otherwise an error that
    names what happened (no ALPN agreement, another protocol, every request failed)."""
    if report.alpn_refused or not report.protocol:
        raise H2loadError(
            f"the server did not negotiate {protocol} with ALPN (h2load offered only "
            f"{protocol}; the server speaks HTTP/1.1 only, or no protocol at all)"
        )
    if report.protocol != protocol:
        raise H2loadError(f"the server negotiated {report.protocol!r}, not {protocol!r}")
    if report.done == 0:
        raise H2loadError(
            f"no request completed over {protocol}: {report.errored} errored, "
            f"{report.timeout} timed out (the server closed or reset the connection?)"
        )
    return report


def latency_ms(log_text: str) -> tuple[float, float, int]:
    """p50 and p99 (nearest rank) of the completed requests in an h2load ``--log-file``, in
    ms, and how many there were; failed requests (status -1) are left out."""
    micros = sorted(
        int(fields[2])
        for fields in (line.split("\t") for line in log_text.splitlines())
        if len(fields) >= 3 and fields[1] != "-1"
    )
    return nearest_rank(micros, 50) / 1000.0, nearest_rank(micros, 99) / 1000.0, len(micros)


def to_load_report(report: H2loadReport, log_text: str) -> LoadReport:
    """The common report: completed requests, h2load's req/s, percentiles from the log;
    connection-level failures as socket errors, 4xx/5xx as failed responses."""
    p50, p99, _ = latency_ms(log_text)
    return LoadReport(
        requests=report.done,
        seconds=report.seconds,
        rps=report.rps,
        p50_ms=p50,
        p99_ms=p99,
        socket_errors=report.errored + report.timeout,
        non_2xx_3xx=report.status_4xx + report.status_5xx,
    )


def h2load_argv(
    url: str,
    connect: str,
    *,
    clients: int,
    streams: int,
    cpu: int | None,
    duration: float | None = None,
    requests: int | None = None,
    log_file: Path | None = None,
) -> list[str]:
    """One thread, ``clients`` connections of ``streams`` concurrent streams each, for whole
    seconds (at least 1) or a number of ``requests``. ``url`` carries the name for SNI and
    ``:authority``; ``connect`` (host:port) is where h2load really connects."""
    argv = ["h2load", "--npn-list=h2", "-t1", f"-c{clients}", f"-m{streams}"]
    if duration is not None:
        argv += ["-D", str(max(1, round(duration)))]
    if requests is not None:
        argv += ["-n", str(requests)]
    argv.append(f"--connect-to={connect}")
    if log_file is not None:
        argv.append(f"--log-file={log_file}")
    argv.append(url)
    return pinned(argv, cpu)


def measure(
    url: str,
    connect: str,
    proxy_roots: Sequence[int],
    backend_roots: Sequence[int],
    *,
    duration: float,
    clients: int,
    streams: int,
    log_file: Path,
    load_cpu: int | None,
    proxy_cpu: int | None,
) -> RunResult:
    argv = h2load_argv(
        url,
        connect,
        clients=clients,
        streams=streams,
        cpu=load_cpu,
        duration=duration,
        log_file=log_file,
    )
    log_file.unlink(missing_ok=True)

    def parse(output: str) -> LoadReport:
        report = checked(parse_h2load(output))
        try:
            log_text = log_file.read_text()
        except OSError as exc:
            raise H2loadError(f"h2load wrote no request log {log_file}: {exc}") from exc
        finally:
            log_file.unlink(missing_ok=True)
        return to_load_report(report, log_text)

    return measure_command(
        argv,
        parse,
        proxy_roots,
        backend_roots,
        duration=duration,
        load_cpu=load_cpu,
        proxy_cpu=proxy_cpu,
    )
