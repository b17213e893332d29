"""Data path (lab): the gRPC demo service's protocol — ``demo.proto`` and its generated code.

``demo_pb2.py``/``demo_pb2.pyi`` (messages) and ``demo_pb2_grpc.py``/``demo_pb2_grpc.pyi``
(stubs and servicer) are generated, never edited: ``make proto`` rewrites them with
``python -m gateway_lab.proto.generate`` (see there for the exact protoc command), and a test
checks that the committed files are what that command produces.
"""
