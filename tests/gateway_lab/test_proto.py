"""Tests: the committed gRPC demo code is exactly what ``make proto`` generates from demo.proto."""

from __future__ import annotations

from pathlib import Path

from gateway_lab.proto import generate
from gateway_lab.proto.demo_pb2 import DESCRIPTOR

COMMITTED = Path(generate.__file__).parent


def test_regenerating_gives_the_committed_files(tmp_path: Path) -> None:
    """grpcio-tools and mypy-protobuf, as pinned, reproduce every generated file byte for byte."""
    written = generate.generate(tmp_path)
    assert [p.name for p in written] == list(generate.GENERATED)
    for path in written:
        committed = COMMITTED / path.name
        assert path.read_bytes() == committed.read_bytes(), (
            f"{committed} is not what `make proto` generates: run it and commit the result"
        )


def test_generated_code_describes_the_four_rpc_kinds() -> None:
    """demo.v1.Demo has unary, server-, client- and bidirectional streaming methods."""
    service = DESCRIPTOR.services_by_name["Demo"]
    kinds = {m.name: (m.client_streaming, m.server_streaming) for m in service.methods}
    assert service.full_name == "demo.v1.Demo"
    assert kinds == {
        "Hello": (False, False),
        "ServerStream": (False, True),
        "ClientStream": (True, False),
        "Bidi": (True, True),
    }


def test_make_proto_runs_the_generator() -> None:
    """The Makefile's proto target is the module this test checks."""
    makefile = (COMMITTED.parents[1] / "Makefile").read_text(encoding="utf-8")
    assert "proto: $(STAMP)\n\t$(BIN)/python -m gateway_lab.proto.generate\n" in makefile
