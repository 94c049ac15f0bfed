"""How fast can grpcio's asyncio server answer ModelInfer at all, on this machine?

Serves KServe's GRPCInferenceService with a ModelInfer that does no work (a prebuilt response,
the request parsed by the generated deserializer and ignored), on uvloop as our server runs, and
drives it with the same h2load load as `make bench` (16 connections, one stream each, the iris
single-row request). Whatever a real server does per call comes on top of this number, so it
bounds any gRPC ratio against the KServe anchor.

    .venv/bin/python -m benchmarks.grpc_floor [--duration 5] [--rounds 3]
"""

import argparse
import statistics
import subprocess
import sys
import time

import numpy as np

from .loadgen import run_h2load
from .servers import free_port
from .workloads import GRPC_INFER_PATH, grpc_frame, grpc_request


def constant_response():
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

    response = pb.ModelInferResponse(model_name="iris", model_version="1", raw_output_contents=[bytes(8)])
    response.outputs.add(name="predict", datatype="INT64", shape=[1])
    return response


def serve(port: int) -> None:
    import uvloop
    from grpc import aio
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc

    response = constant_response()

    class ConstantServicer(grpc_predict_v2_pb2_grpc.GRPCInferenceServiceServicer):
        async def ModelInfer(self, request, context):
            return response

    async def main():
        server = aio.server()
        grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(ConstantServicer(), server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        await server.wait_for_termination()

    uvloop.run(main())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per load run")
    parser.add_argument("--rounds", type=int, default=3, help="load runs; the median is reported")
    parser.add_argument("--serve", type=int, default=None, help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    if args.serve is not None:
        return serve(args.serve)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "benchmarks.grpc_floor", "--serve", str(port)])
    try:
        time.sleep(3)  # the server prints nothing; the first h2load run fails loudly if it is not up
        frame = grpc_frame(grpc_request("iris", np.array([[5.1, 3.5, 1.4, 0.2]])).SerializeToString())
        # The prebuilt response's framed size, for h2load's check that every call succeeded.
        response_frame_bytes = 5 + constant_response().ByteSize()
        rates = []
        for _ in range(args.rounds):
            result = run_h2load(f"http://127.0.0.1:{port}{GRPC_INFER_PATH}", frame, response_frame_bytes, args.duration)
            if not result.valid:
                sys.exit(f"invalid run: {result.invalid_reason}")
            rates.append(result.req_per_s)
            print(
                f"grpcio floor: {result.req_per_s:,.0f} req/s (p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms)"
            )
        print(f"median of {args.rounds}: {statistics.median(rates):,.0f} req/s")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
