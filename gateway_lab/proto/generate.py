"""Lab: regenerate the Python code of ``gateway_lab/proto/demo.proto`` (``make proto``).

Run from the repository root; the command it runs is, with ``OUT`` the repository root::

    python -m grpc_tools.protoc -I . --python_out=OUT --pyi_out=OUT --grpc_python_out=OUT \\
        --plugin=protoc-gen-mypy_grpc=<venv>/bin/protoc-gen-mypy_grpc --mypy_grpc_out=OUT \\
        gateway_lab/proto/demo.proto

grpcio-tools writes the messages (``demo_pb2.py``), their typed stubs (``--pyi_out``) and the
gRPC stubs (``demo_pb2_grpc.py``); mypy-protobuf's ``protoc-gen-mypy_grpc`` writes typed stubs
for the latter, so the pods and clients type-check under ``mypy --strict``. Both generators are
pinned in the ``dev`` extra: their versions are written into the generated files, and
``python -m gateway_lab.proto.generate --out DIR`` is how the tests check that the committed
files are exactly what they produce.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROTO = "gateway_lab/proto/demo.proto"
GENERATED = ("demo_pb2.py", "demo_pb2.pyi", "demo_pb2_grpc.py", "demo_pb2_grpc.pyi")
MYPY_GRPC_PLUGIN = "protoc-gen-mypy_grpc"


def plugin_path() -> str:
    """mypy-protobuf's gRPC plugin: beside this interpreter (the venv), else on PATH."""
    beside = Path(sys.executable).with_name(MYPY_GRPC_PLUGIN)
    if beside.is_file():
        return str(beside)
    found = shutil.which(MYPY_GRPC_PLUGIN)
    if found is None:
        raise FileNotFoundError(
            f"{MYPY_GRPC_PLUGIN} not found: install the dev extra (pip install -e '.[dev]')"
        )
    return found


def protoc_argv(out: Path) -> list[str]:
    """The protoc command line, writing under ``out`` (as ``out/gateway_lab/proto/...``)."""
    return [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        "-I",
        ".",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        f"--plugin={MYPY_GRPC_PLUGIN}={plugin_path()}",
        f"--mypy_grpc_out={out}",
        PROTO,
    ]


def generate(out: Path) -> list[Path]:
    """Run protoc from the repository root; the generated files' paths."""
    out.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        protoc_argv(out.resolve()), cwd=ROOT, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"protoc failed ({result.returncode}): {result.stderr.strip()}")
    folder = out / Path(PROTO).parent
    return [folder / name for name in GENERATED]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gateway_lab.proto.generate", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--out", type=Path, default=ROOT, help="default: the repository root")
    args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    try:
        written = generate(args.out)
    except (OSError, RuntimeError) as exc:
        print(f"proto: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
