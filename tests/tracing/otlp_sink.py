"""A counting OTLP/gRPC receiver for the tracing benchmark (scripts/bench-tracing.sh): decodes
every ExportTraceServiceRequest and counts spans; prints the count to the file named by its
second argument on each export. Usage: otlp_sink.py PORT COUNT_FILE"""
import sys
import threading
from concurrent import futures

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


class Sink(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, path):
        self.path, self.n, self.lock = path, 0, threading.Lock()

    def Export(self, request, context):
        k = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
        with self.lock:
            self.n += k
            with open(self.path, "w") as f:
                f.write(str(self.n))
        return trace_service_pb2.ExportTraceServiceResponse()


server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Sink(sys.argv[2]), server)
server.add_insecure_port(f"127.0.0.1:{sys.argv[1]}")
server.start()
print("ready", flush=True)
server.wait_for_termination()
